/**
 * The data-movement kernel behind Transpose, Slice, Expand, Tile, DepthToSpace and SpaceToDepth:
 * copy a strided view of a source buffer into a contiguous destination.
 *
 * A view is (offset, shape, strides) over the source; strides may be 0 (broadcast) or negative
 * (reversed slices). Before copying, dims of size 1 are dropped and adjacent dims that are
 * contiguous in the source are merged, so a Slice of the last axis or a head transpose
 * [B,S,N,H] -> [B,N,S,H] becomes a loop of long contiguous block copies (TypedArray.set), and a
 * swap of the last two axes becomes a cache-tiled 2-D transpose. Nothing is allocated per element.
 */
import type { TensorData } from '../tensor';

/** Below this many elements a plain loop beats subarray()+set(). */
const BLOCK_MIN = 16;
/** Tile edge of the 2-D transpose path. */
const TILE = 32;

interface Dims {
  readonly sizes: number[];
  readonly strides: number[];
}

/** Drops size-1 dims and merges dims that are contiguous in the source. */
function simplify(shape: readonly number[], strides: readonly number[]): Dims {
  const sizes: number[] = [];
  const st: number[] = [];
  for (let i = shape.length - 1; i >= 0; i--) {
    const n = shape[i]!;
    const s = strides[i]!;
    if (n === 1) continue;
    const k = sizes.length - 1;
    if (k >= 0 && st[k]! * sizes[k]! === s) sizes[k] = sizes[k]! * n;
    else {
      sizes.push(n);
      st.push(s);
    }
  }
  sizes.reverse();
  st.reverse();
  return { sizes, strides: st };
}

/** Copies n elements src[s], src[s+stride], ... into dst[d..d+n). */
function copyRow(src: TensorData, s: number, stride: number, n: number, dst: TensorData, d: number): void {
  if (stride === 1) {
    if (n >= BLOCK_MIN) dst.set(src.subarray(s, s + n), d);
    else for (let j = 0; j < n; j++) dst[d + j] = src[s + j]!;
  } else if (stride === 0) {
    dst.fill(src[s]!, d, d + n);
  } else {
    for (let j = 0; j < n; j++, s += stride) dst[d + j] = src[s]!;
  }
}

/**
 * Writes the view (srcOffset, shape, srcStrides) of `src` into `dst` starting at `dstOffset`, in
 * row-major order of `shape`.
 */
export function copyStrided(
  src: TensorData,
  srcOffset: number,
  shape: readonly number[],
  srcStrides: readonly number[],
  dst: TensorData,
  dstOffset = 0,
): void {
  for (const n of shape) if (n === 0) return;
  const { sizes, strides } = simplify(shape, srcStrides);
  const r = sizes.length;
  if (r === 0) {
    dst[dstOffset] = src[srcOffset]!;
    return;
  }
  const n = sizes[r - 1]!;
  const s = strides[r - 1]!;
  // A 2-D transpose inside: the source-contiguous dim is an outer dim of the destination.
  if (s !== 1 && s !== 0 && n >= TILE / 4) {
    for (let j = r - 2; j >= 0; j--) {
      if (strides[j] === 1 && sizes[j]! >= TILE / 4) {
        tiledTranspose(src, srcOffset, sizes, strides, j, dst, dstOffset);
        return;
      }
    }
  }
  // General case: odometer over the outer dims, one row copy per step.
  const outer = r - 1;
  const idx = new Array<number>(outer).fill(0);
  let rows = 1;
  for (let k = 0; k < outer; k++) rows *= sizes[k]!;
  let so = srcOffset;
  let d = dstOffset;
  for (let row = 0; row < rows; row++) {
    copyRow(src, so, s, n, dst, d);
    d += n;
    for (let k = outer - 1; k >= 0; k--) {
      so += strides[k]!;
      if (++idx[k]! < sizes[k]!) break;
      idx[k] = 0;
      so -= strides[k]! * sizes[k]!;
    }
  }
}

/**
 * Copies a view whose dim `j` has source stride 1 while the innermost dim does not: for every
 * position of the other dims, a (sizes[j] x n) block is transposed in TILE x TILE tiles so both
 * reads and writes stay within a few cache lines.
 */
function tiledTranspose(
  src: TensorData,
  srcOffset: number,
  sizes: readonly number[],
  strides: readonly number[],
  j: number,
  dst: TensorData,
  dstOffset: number,
): void {
  const r = sizes.length;
  const dstStrides = new Array<number>(r);
  let acc = 1;
  for (let k = r - 1; k >= 0; k--) {
    dstStrides[k] = acc;
    acc *= sizes[k]!;
  }
  const a = sizes[j]!;
  const da = dstStrides[j]!;
  const n = sizes[r - 1]!;
  const sn = strides[r - 1]!;
  // The remaining dims (all but j and the innermost), iterated by an odometer.
  const rest: number[] = [];
  for (let k = 0; k < r - 1; k++) if (k !== j) rest.push(k);
  const idx = new Array<number>(rest.length).fill(0);
  let count = 1;
  for (const k of rest) count *= sizes[k]!;
  let so = srcOffset;
  let doff = dstOffset;
  for (let c = 0; c < count; c++) {
    for (let a0 = 0; a0 < a; a0 += TILE) {
      const a1 = Math.min(a, a0 + TILE);
      for (let b0 = 0; b0 < n; b0 += TILE) {
        const b1 = Math.min(n, b0 + TILE);
        for (let x = a0; x < a1; x++) {
          let sp = so + x + b0 * sn;
          const dp = doff + x * da;
          for (let y = b0; y < b1; y++, sp += sn) dst[dp + y] = src[sp]!;
        }
      }
    }
    for (let q = rest.length - 1; q >= 0; q--) {
      const k = rest[q]!;
      so += strides[k]!;
      doff += dstStrides[k]!;
      if (++idx[q]! < sizes[k]!) break;
      idx[q] = 0;
      so -= strides[k]! * sizes[k]!;
      doff -= dstStrides[k]! * sizes[k]!;
    }
  }
}
