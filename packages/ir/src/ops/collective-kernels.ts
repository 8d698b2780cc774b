/**
 * Data movement along one axis, shared by the collective rules (token reordering) and the SPMD
 * simulator (all-to-all, all-gather, slices): a tensor viewed as [outer, n, inner] around the
 * axis, so every copy is a loop of contiguous `inner`-long runs.
 */
import { Tensor, allocData } from '../tensor';

interface AxisView {
  readonly outer: number;
  readonly n: number;
  readonly inner: number;
}

function axisView(shape: readonly number[], axis: number): AxisView {
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i]!;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i]!;
  return { outer, n: shape[axis]!, inner };
}

function withAxis(shape: readonly number[], axis: number, n: number): number[] {
  const s = [...shape];
  s[axis] = n;
  return s;
}

/** Positions [start, start+len) of `axis`. */
export function sliceAxis(t: Tensor, axis: number, start: number, len: number): Tensor {
  const { outer, n, inner } = axisView(t.shape, axis);
  const out = allocData(t.dtype, outer * len * inner);
  for (let o = 0; o < outer; o++) {
    const src = (o * n + start) * inner;
    out.set(t.data.subarray(src, src + len * inner), o * len * inner);
  }
  return new Tensor(t.dtype, withAxis(t.shape, axis, len), out);
}

/** Concatenation along `axis` (all parts share the other dims). */
export function concatAxis(parts: readonly Tensor[], axis: number): Tensor {
  const first = parts[0]!;
  const { outer, inner } = axisView(first.shape, axis);
  const total = parts.reduce((a, p) => a + p.shape[axis]!, 0);
  const out = allocData(first.dtype, outer * total * inner);
  for (let o = 0; o < outer; o++) {
    let pos = 0;
    for (const p of parts) {
      const m = p.shape[axis]!;
      out.set(p.data.subarray(o * m * inner, (o + 1) * m * inner), (o * total + pos) * inner);
      pos += m;
    }
  }
  return new Tensor(first.dtype, withAxis(first.shape, axis, total), out);
}

/** Splits `axis` into `parts` equal pieces (the caller checked divisibility). */
export function splitAxis(t: Tensor, axis: number, parts: number): Tensor[] {
  const len = t.shape[axis]! / parts;
  return Array.from({ length: parts }, (_, i) => sliceAxis(t, axis, i * len, len));
}

/** out[..., i, ...] = t[..., index[i], ...], or `fill` where index[i] < 0. */
export function takeAxis(t: Tensor, axis: number, index: Int32Array, fill: number): Tensor {
  const { outer, n, inner } = axisView(t.shape, axis);
  const m = index.length;
  const out = allocData(t.dtype, outer * m * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < m; i++) {
      const dst = (o * m + i) * inner;
      const k = index[i]!;
      if (k < 0) out.fill(fill, dst, dst + inner);
      else out.set(t.data.subarray((o * n + k) * inner, (o * n + k + 1) * inner), dst);
    }
  }
  // `fill` is a value of the dtype already (0, 1 or a float the dtype rounds); normalize anyway.
  return Tensor.normalized(t.dtype, withAxis(t.shape, axis, m), out);
}
