/**
 * Dims as sums of symbols, and ONNX shape rules over them, for fold-symbolic-shapes.
 *
 * A Dim is a size or a symbol; a symbol made here may name a sum ("image_seq+text_seq+3":
 * symbols sorted, size last), so a Concat of streams and the Slices that split it again can be
 * named exactly. Other passes treat these names as opaque symbols.
 */
import type { Dim } from '@paradit/ir';

interface DimSum {
  readonly size: number;
  /** Sorted; repeated symbols appear repeatedly. */
  readonly symbols: readonly string[];
}

function toSum(d: Dim): DimSum {
  if (typeof d === 'number') return { size: d, symbols: [] };
  let size = 0;
  const symbols: string[] = [];
  for (const part of d.split('+')) {
    if (/^[0-9]+$/.test(part)) size += Number(part);
    else symbols.push(part);
  }
  return { size, symbols: symbols.sort() };
}

function fromSum(s: DimSum): Dim {
  if (s.symbols.length === 0) return s.size;
  if (s.size === 0 && s.symbols.length === 1) return s.symbols[0]!;
  return [...s.symbols, ...(s.size ? [String(s.size)] : [])].join('+');
}

export function addDims(a: Dim, b: Dim): Dim {
  const x = toSum(a);
  const y = toSum(b);
  return fromSum({ size: x.size + y.size, symbols: [...x.symbols, ...y.symbols].sort() });
}

/** a - b when it is a sum of symbols and a size >= 0 (b's symbols all appear in a). */
export function subDims(a: Dim, b: Dim): Dim | undefined {
  const x = toSum(a);
  const y = toSum(b);
  const rest = [...x.symbols];
  for (const s of y.symbols) {
    const k = rest.indexOf(s);
    if (k < 0) return undefined;
    rest.splice(k, 1);
  }
  const size = x.size - y.size;
  if (size < 0 && rest.length === 0) return undefined;
  return size < 0 ? undefined : fromSum({ size, symbols: rest });
}

/** ONNX Reshape over dims; undefined when a -1 cannot be solved. */
export function resolveReshape(input: readonly Dim[], target: readonly Dim[], allowzero: boolean): Dim[] | undefined {
  const out: Dim[] = [];
  let inferAt = -1;
  for (let i = 0; i < target.length; i++) {
    const t = target[i]!;
    if (t === -1) {
      if (inferAt >= 0) return undefined;
      inferAt = i;
      out.push(-1);
    } else if (t === 0 && !allowzero) {
      if (i >= input.length) return undefined;
      out.push(input[i]!);
    } else if (typeof t === 'number' && t < 0) return undefined;
    else out.push(t);
  }
  if (inferAt < 0) return out;
  const rest = [...input];
  let factor = 1;
  for (const d of rest.filter((d): d is number => typeof d === 'number')) factor *= d;
  const symbols = rest.filter((d): d is string => typeof d === 'string');
  let outFactor = 1;
  for (let i = 0; i < out.length; i++) {
    if (i === inferAt) continue;
    const d = out[i]!;
    if (typeof d === 'number') outFactor *= d;
    else {
      const k = symbols.indexOf(d);
      if (k < 0) return undefined;
      symbols.splice(k, 1);
    }
  }
  if (outFactor === 0 || factor % outFactor !== 0) return undefined;
  const q = factor / outFactor;
  if (symbols.length === 0) out[inferAt] = q;
  else if (symbols.length === 1 && q === 1) out[inferAt] = symbols[0]!;
  else return undefined;
  return out;
}


/**
 * ONNX (bidirectional) broadcast of `a` against `b`, aligned at the right: a 1 takes the other
 * dim; different dims (two symbols, or a symbol and a size) give undefined.
 */
export function broadcastDims(a: readonly Dim[], b: readonly Dim[]): Dim[] | undefined {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x === 1) out.push(y);
    else if (y === 1 || x === y) out.push(x);
    else return undefined;
  }
  return out;
}
