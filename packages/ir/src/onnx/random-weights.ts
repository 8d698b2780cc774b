/**
 * Seeded random weights for benchmarking models whose weights are not at hand (flux-dev-2x4
 * ships graph-only).
 *
 * Each tensor gets its own 53-bit seed, `tensorSeed(seed, name)`, recorded as its ConstData
 * source ({kind: 'random', seed}); the data is a function of (dtype, shape, that seed) alone, so
 * anything holding the source can regenerate it, and tensors of equal shape never share a source
 * (content hashing identifies random constants by source).
 *
 * The generator is counter-based, integer-exact and needs one rounding, so a GPU runtime can
 * reproduce it bit for bit, element by element in parallel. With lo = seed mod 2^32,
 * hi = floor(seed / 2^32) and J = Robert Jenkins' six-shift 32-bit integer hash (uint32
 * wrap-around; no multiplications, which also keeps it fast where Math.imul is slow):
 *
 *   h_i = J(J(i ^ lo) ^ hi)                           element index i, as uint32
 *   c_i = (h_i >>> 8) - 2^23                          an integer in [-2^23, 2^23)
 *   x_i = f32(c_i * 2^-23 * B),  B = f32(1 / sqrt(fan_in)), fan_in = last dim (1 for scalars)
 *
 * (c_i * 2^-23 * B is exact in double, so x_i is one correctly rounded fp32 product), then x_i
 * is rounded to the dtype (bf16/f16/fp8: round to nearest even). Values are uniform in [-B, B),
 * the scale of a default-initialized linear layer.
 */
import type { DType } from '../dtype';
import { isFloat, roundArrayTo, usesF32Storage } from '../dtype';
import { Tensor, numel } from '../tensor';

const TWO_32 = 4294967296;

/** FNV-1a over UTF-16 code units: a stable 32-bit hash of a tensor name. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's fmix32 of (state + 0x9e3779b9), in uint32 arithmetic. */
function mix32(state: number): number {
  let z = (state + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** The per-tensor seed (a non-negative safe integer) for initializer `name` under a user seed. */
export function tensorSeed(seed: number, name: string): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / TWO_32) >>> 0;
  const h = fnv1a(name);
  const a = mix32(h ^ lo);
  const b = mix32(a ^ hi ^ 0x5bd1e995);
  return (b & 0x1fffff) * TWO_32 + a;
}

/** Robert Jenkins' 32-bit integer hash (adds, shifts and xors only); returns int32 bits. */
function jenkins32(a: number): number {
  a = (a + 0x7ed55d16 + (a << 12)) | 0;
  a = a ^ 0xc761c23c ^ (a >>> 19);
  a = (a + 0x165667b1 + (a << 5)) | 0;
  a = ((a + 0xd3a2646c) | 0) ^ (a << 9);
  a = (a + 0xfd7046c5 + (a << 3)) | 0;
  return a ^ 0xb55a4f09 ^ (a >>> 16);
}

/** Fills `out` with the values x_i of the header's formula for a (53-bit) seed. */
function fillUniform(out: Float32Array, seed: number, bound: number): void {
  const lo = seed | 0;
  const hi = Math.floor(seed / TWO_32) | 0;
  // c * scale is exact in double; the Float32Array store rounds it once, like f32(...).
  const scale = Math.fround(bound) * 2 ** -23;
  const n = out.length;
  for (let i = 0; i < n; i++) {
    const h = jenkins32(jenkins32(i ^ lo) ^ hi);
    out[i] = ((h >>> 8) - 8388608) * scale;
  }
}

/** The ±bound used for a weight of this shape (see the file header). */
export function randomBound(shape: readonly number[]): number {
  const fanIn = shape.length > 0 ? shape[shape.length - 1]! : 1;
  return 1 / Math.sqrt(Math.max(1, fanIn));
}

/**
 * A float tensor of seeded random values. `seed` is a per-tensor seed (see `tensorSeed`); the
 * same (dtype, shape, seed) always gives the same data.
 */
export function randomTensor(dtype: DType, shape: readonly number[], seed: number): Tensor {
  if (!isFloat(dtype)) throw new Error(`randomTensor: ${dtype} is not a float dtype`);
  const values = new Float32Array(numel(shape));
  fillUniform(values, seed, randomBound(shape));
  if (!usesF32Storage(dtype)) return new Tensor(dtype, shape, Float64Array.from(values)); // f64: the same values
  roundArrayTo(dtype, values);
  return new Tensor(dtype, shape, values);
}
