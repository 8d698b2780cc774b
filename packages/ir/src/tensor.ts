/**
 * Tensor: a dense, row-major value of a known dtype and static shape. The storage convention is
 * the one in dtype.ts: Float32Array for f32/f16/bf16/fp8 (values already rounded to the dtype),
 * Float64Array for f64, integers and bool.
 */
import { DType, usesF32Storage, roundArrayTo, toIntegerDtype, isInteger } from './dtype';

export type TensorData = Float32Array | Float64Array;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function allocData(dtype: DType, n: number): TensorData {
  return usesF32Storage(dtype) ? new Float32Array(n) : new Float64Array(n);
}

export class Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;

  /** Wraps `data` without copying. The caller guarantees the values already fit `dtype`. */
  constructor(dtype: DType, shape: readonly number[], data: TensorData) {
    const n = numel(shape);
    if (data.length !== n) {
      throw new Error(`Tensor: shape [${shape.join(',')}] needs ${n} elements, got ${data.length}`);
    }
    if (usesF32Storage(dtype) !== data instanceof Float32Array) {
      throw new Error(`Tensor: dtype ${dtype} must be stored in a ${usesF32Storage(dtype) ? 'Float32Array' : 'Float64Array'}`);
    }
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.data = data;
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** A zero-filled tensor. */
  static zeros(dtype: DType, shape: readonly number[]): Tensor {
    return new Tensor(dtype, shape, allocData(dtype, numel(shape)));
  }

  /**
   * Builds a tensor from plain numbers, rounding floats to the dtype and converting integers the
   * way a C cast does.
   */
  static from(dtype: DType, shape: readonly number[], values: ArrayLike<number>): Tensor {
    const data = allocData(dtype, values.length);
    for (let i = 0; i < values.length; i++) data[i] = values[i]!;
    return Tensor.normalized(dtype, shape, data);
  }

  /** Wraps freshly computed values, rounding them in place to what the dtype can hold. */
  static normalized(dtype: DType, shape: readonly number[], data: TensorData): Tensor {
    if (data instanceof Float32Array) roundArrayTo(dtype, data);
    else if (isInteger(dtype) || dtype === 'bool') {
      for (let i = 0; i < data.length; i++) data[i] = toIntegerDtype(dtype, data[i]!);
    }
    return new Tensor(dtype, shape, data);
  }

  static scalar(dtype: DType, value: number): Tensor {
    return Tensor.from(dtype, [], [value]);
  }

  /** The values as plain numbers (for small tensors: shapes, axes, test output). */
  toArray(): number[] {
    return Array.from(this.data);
  }

  /** Same data, new shape (element count must match). */
  reshape(shape: readonly number[]): Tensor {
    return new Tensor(this.dtype, shape, this.data);
  }
}
