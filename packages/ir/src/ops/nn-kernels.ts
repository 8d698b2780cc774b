/**
 * Numeric kernels shared by the NnOp rules (MatMul, Gemm, Einsum, Conv, ConvTranspose): a
 * row-streaming matrix multiply with double accumulators, a strided permute copy, and small
 * helpers for output allocation. Nothing here knows about ONNX attributes; the rules in
 * nn-*.ts decide shapes and call these on plain typed arrays.
 */
import type { DType } from '../dtype';
import { isFloat } from '../dtype';
import { Tensor, TensorData, allocData, numel, stridesOf } from '../tensor';
import type { RuleCtx } from './rule';

/** Reusable accumulator: grows as needed, never shrinks (no allocation per call). */
let scratch = new Float64Array(1024);
function accRow(n: number): Float64Array {
  if (scratch.length < n) scratch = new Float64Array(Math.max(n, scratch.length * 2));
  return scratch;
}

/** Columns of C computed per pass: the [K, TILE] panel of B then stays in cache across rows of A. */
const TILE_N = 256;

/**
 * C[M,N] = A[M,K] · B[K,N] for row-major operands with leading dimensions lda/ldb/ldc (elements
 * between consecutive rows). Loop order i-k-j with rows of B streamed: four rows of C accumulate
 * together in doubles (each B element loaded once feeds four products), k is unrolled by 2, and
 * columns are processed in panels of TILE_N so B's panel is reused from cache by every row.
 * With `accumulate`, the result is added to what C already holds.
 */
export function gemm(
  a: TensorData, aOff: number, lda: number,
  b: TensorData, bOff: number, ldb: number,
  c: TensorData, cOff: number, ldc: number,
  M: number, K: number, N: number,
  accumulate = false,
): void {
  const tile = Math.min(N, TILE_N);
  const acc = accRow(4 * tile);
  for (let j0 = 0; j0 < N; j0 += tile) {
    const nn = Math.min(tile, N - j0);
    let i = 0;
    for (; i + 3 < M; i += 4) {
      const r0 = aOff + i * lda;
      const r1 = r0 + lda;
      const r2 = r1 + lda;
      const r3 = r2 + lda;
      loadAcc(acc, c, cOff + i * ldc + j0, ldc, 4, nn, accumulate);
      let k = 0;
      for (; k + 1 < K; k += 2) {
        const p0 = a[r0 + k]!, p1 = a[r1 + k]!, p2 = a[r2 + k]!, p3 = a[r3 + k]!;
        const q0 = a[r0 + k + 1]!, q1 = a[r1 + k + 1]!, q2 = a[r2 + k + 1]!, q3 = a[r3 + k + 1]!;
        const b0 = bOff + k * ldb + j0;
        const b1 = b0 + ldb;
        for (let j = 0; j < nn; j++) {
          const x = b[b0 + j]!;
          const y = b[b1 + j]!;
          acc[j] = acc[j]! + p0 * x + q0 * y;
          acc[nn + j] = acc[nn + j]! + p1 * x + q1 * y;
          acc[2 * nn + j] = acc[2 * nn + j]! + p2 * x + q2 * y;
          acc[3 * nn + j] = acc[3 * nn + j]! + p3 * x + q3 * y;
        }
      }
      if (k < K) {
        const p0 = a[r0 + k]!, p1 = a[r1 + k]!, p2 = a[r2 + k]!, p3 = a[r3 + k]!;
        const b0 = bOff + k * ldb + j0;
        for (let j = 0; j < nn; j++) {
          const x = b[b0 + j]!;
          acc[j] = acc[j]! + p0 * x;
          acc[nn + j] = acc[nn + j]! + p1 * x;
          acc[2 * nn + j] = acc[2 * nn + j]! + p2 * x;
          acc[3 * nn + j] = acc[3 * nn + j]! + p3 * x;
        }
      }
      storeAcc(acc, c, cOff + i * ldc + j0, ldc, 4, nn);
    }
    for (; i < M; i++) {
      const r0 = aOff + i * lda;
      loadAcc(acc, c, cOff + i * ldc + j0, ldc, 1, nn, accumulate);
      for (let k = 0; k < K; k++) {
        const p0 = a[r0 + k]!;
        const b0 = bOff + k * ldb + j0;
        for (let j = 0; j < nn; j++) acc[j] = acc[j]! + p0 * b[b0 + j]!;
      }
      storeAcc(acc, c, cOff + i * ldc + j0, ldc, 1, nn);
    }
  }
}

function loadAcc(acc: Float64Array, c: TensorData, off: number, ldc: number, rows: number, nn: number, accumulate: boolean): void {
  if (!accumulate) {
    acc.fill(0, 0, rows * nn);
    return;
  }
  for (let r = 0; r < rows; r++) for (let j = 0; j < nn; j++) acc[r * nn + j] = c[off + r * ldc + j]!;
}

function storeAcc(acc: Float64Array, c: TensorData, off: number, ldc: number, rows: number, nn: number): void {
  for (let r = 0; r < rows; r++) for (let j = 0; j < nn; j++) c[off + r * ldc + j] = acc[r * nn + j]!;
}

/**
 * Copies `data` (row-major, `shape`) into a new array laid out as the permutation `perm` of its
 * axes: out.shape[i] = shape[perm[i]]. The innermost output axis is walked with a precomputed
 * source stride, so the copy has no per-element index arithmetic beyond one add.
 */
export function permute(data: TensorData, shape: readonly number[], perm: readonly number[], out?: TensorData): TensorData {
  const n = data.length;
  const dst = out ?? (data instanceof Float32Array ? new Float32Array(n) : new Float64Array(n));
  const rank = shape.length;
  if (rank === 0 || n === 0) {
    if (n > 0) dst[0] = data[0]!;
    return dst;
  }
  if (perm.every((p, i) => p === i)) {
    dst.set(data);
    return dst;
  }
  const srcStrides = stridesOf(shape);
  const oshape = perm.map((p) => shape[p]!);
  const ostr = perm.map((p) => srcStrides[p]!);
  const inner = oshape[rank - 1]!;
  const innerStride = ostr[rank - 1]!;
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  for (let o = 0; o < n; o += inner) {
    for (let j = 0, s = src; j < inner; j++, s += innerStride) dst[o + j] = data[s]!;
    // Advance the outer odometer (axes rank-2 .. 0).
    for (let ax = rank - 2; ax >= 0; ax--) {
      idx[ax]!++;
      src += ostr[ax]!;
      if (idx[ax]! < oshape[ax]!) break;
      src -= ostr[ax]! * oshape[ax]!;
      idx[ax] = 0;
    }
  }
  return dst;
}

/** Broadcast strides of `shape` aligned right against `target` (0 where the operand has size 1). */
export function broadcastStrides(shape: readonly number[], target: readonly number[]): number[] {
  const s = stridesOf(shape);
  const out = new Array<number>(target.length).fill(0);
  const off = target.length - shape.length;
  for (let i = 0; i < shape.length; i++) out[off + i] = shape[i] === 1 ? 0 : s[i]!;
  return out;
}

/** Fresh output storage for a dtype. */
export function alloc(dtype: DType, shape: readonly number[]): TensorData {
  return allocData(dtype, numel(shape));
}

/** Wraps computed values as a tensor of `dtype`, rounding to it. */
export function finish(dtype: DType, shape: readonly number[], data: TensorData): Tensor {
  return Tensor.normalized(dtype, shape, data);
}

/** Fails unless `d` is a float dtype (normalization, attention and pooling rules). */
export function requireFloat(ctx: RuleCtx, d: DType, what: string): void {
  if (!isFloat(d)) ctx.fail(`${what} must be a float tensor, got ${d}`);
}

/** Fails unless `d` is numeric (not bool). */
export function requireNumeric(ctx: RuleCtx, d: DType, what: string): void {
  if (d === 'bool') ctx.fail(`${what} must be numeric, got bool`);
}

/** "[2,3]" for messages. */
export function fmt(shape: readonly (number | string)[]): string {
  return `[${shape.join(',')}]`;
}
