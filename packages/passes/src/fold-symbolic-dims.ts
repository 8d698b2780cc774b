/**
 * Dims as sums of symbols, and ONNX shape rules over them, for fold-symbolic-shapes.
 *
 * A Dim is a size or a symbol; a symbol made here may name a sum ("image_seq+text_seq+3":
 * symbols sorted, size last), so a Concat of streams and the Slices that split it again can be
 * named exactly, or a product ("batch*4", "batch*seq": symbols sorted, size last), so heads
 * folded into the batch (head_to_batch_dim: [B,S,N*H] -> [B*N,S,H]) keep a name that says so.
 * A sum is never multiplied (no "(a+b)*2"); inside a product it is one opaque factor, and a
 * product is one opaque term of a sum. The IR's op rules treat all these names as opaque symbols.
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

/** A product of a size and symbols (sorted; repeats kept); a sum is one opaque symbol. */
export interface Monomial {
  readonly size: number;
  readonly symbols: readonly string[];
}

const SIZE = /^[0-9]+$/;

function toMonomial(d: Dim): Monomial {
  if (typeof d === 'number') return { size: d, symbols: [] };
  if (d.includes('+')) return { size: 1, symbols: [d] };
  let size = 1;
  const symbols: string[] = [];
  for (const part of d.split('*')) {
    if (SIZE.test(part)) size *= Number(part);
    else symbols.push(part);
  }
  return { size, symbols: symbols.sort() };
}

/** The canonical name of a product: the size itself, the lone symbol, or "a*b*4". */
function fromMonomial(m: Monomial): Dim | undefined {
  if (m.symbols.length === 0) return m.size;
  if (m.size === 0) return 0;
  // A sum multiplied by anything but 1 has no name here ("a+b*2" would read as a + 2b).
  if (m.symbols.some((s) => s.includes('+')) && (m.symbols.length > 1 || m.size !== 1)) return undefined;
  return [...m.symbols, ...(m.size !== 1 ? [String(m.size)] : [])].join('*');
}

function mulMono(a: Monomial, b: Monomial): Monomial {
  return { size: a.size * b.size, symbols: [...a.symbols, ...b.symbols].sort() };
}

/** a / b when it is exact: b's symbols all appear in a and the sizes divide. */
function divMono(a: Monomial, b: Monomial): Monomial | undefined {
  if (b.size === 0 || a.size % b.size !== 0) return undefined;
  const rest = [...a.symbols];
  for (const s of b.symbols) {
    const k = rest.indexOf(s);
    if (k < 0) return undefined;
    rest.splice(k, 1);
  }
  return { size: a.size / b.size, symbols: rest };
}

/** a * b, named canonically ("batch" * 4 = "batch*4"); undefined when it has no name (a sum times 2). */
export function mulDims(a: Dim, b: Dim): Dim | undefined {
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  if (a === 1) return b;
  if (b === 1) return a;
  return fromMonomial(mulMono(toMonomial(a), toMonomial(b)));
}

/** a / b when exact for every value of the symbols ("batch*4" / 2 = "batch*2"); undefined otherwise. */
export function divDims(a: Dim, b: Dim): Dim | undefined {
  if (typeof a === 'number' && typeof b === 'number') return b !== 0 && a % b === 0 ? a / b : undefined;
  if (b === 1) return a;
  if (a === b) return 1;
  const q = divMono(toMonomial(a), toMonomial(b));
  return q && fromMonomial(q);
}

/** How symbol `d` follows from one dim of `from`: dim `axis` times `mul` over `div` (equal first). */
export function derivedDim(from: readonly Dim[], d: string): { readonly axis: number; readonly mul: number; readonly div: number } | undefined {
  const same = from.indexOf(d);
  if (same >= 0) return { axis: same, mul: 1, div: 1 };
  for (let j = 0; j < from.length; j++) {
    const mul = divDims(d, from[j]!);
    if (typeof mul === 'number') return { axis: j, mul, div: 1 };
    const div = divDims(from[j]!, d);
    if (typeof div === 'number') return { axis: j, mul: 1, div };
  }
  return undefined;
}

/** The product of dims (1 for none); undefined when it has no name. */
export function productOfDims(dims: readonly Dim[]): Dim | undefined {
  let p: Dim | undefined = 1;
  for (const d of dims) p = p === undefined ? undefined : mulDims(p, d);
  return p;
}

/**
 * ONNX Reshape over dims; undefined when a -1 cannot be solved. Products ("batch*4") are read as
 * such, so [batch*4,S,8] -> [batch,4,S,-1] solves the -1 to 8. The -1 itself resolves to a size,
 * a lone symbol, or a product that already names a dim (`named`: torch's repeat_interleave of a
 * mask over heads reshapes to [-1,1,T], and the -1 is the scores' "batch*4"); a product nothing
 * else is named by (a flatten to "seq*8") stays unresolved.
 */
export function resolveReshape(input: readonly Dim[], target: readonly Dim[], allowzero: boolean, named?: ReadonlySet<string>): Dim[] | undefined {
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
  let whole: Monomial = { size: 1, symbols: [] };
  for (const d of input) whole = mulMono(whole, toMonomial(d));
  let known: Monomial = { size: 1, symbols: [] };
  for (let i = 0; i < out.length; i++) if (i !== inferAt) known = mulMono(known, toMonomial(out[i]!));
  if (known.size === 0) return undefined;
  const q = divMono(whole, known);
  if (!q) return undefined;
  const name = fromMonomial(q);
  if (q.symbols.length === 0) out[inferAt] = q.size;
  else if (q.symbols.length === 1 && q.size === 1) out[inferAt] = q.symbols[0]!;
  else if (typeof name === 'string' && named?.has(name)) out[inferAt] = name;
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
