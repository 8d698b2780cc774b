/**
 * Formatting of the pieces of the IR text form (printer.ts) that the parser must read back
 * exactly: numbers, names, types and provenance hints.
 *
 * Numbers:
 * - Float data of f32/f16/bf16/fp8 tensors prints the shortest decimal that rounds back to the
 *   same float32; f64 data the shortest that parses back to the same double. Floats always carry
 *   a '.' or an exponent (`1.0`, `1e-7`) so they never read as integers; `nan`, `inf`, `-inf`.
 * - Float attributes are float32 in ONNX: one exactly representable in float32 prints like f32
 *   data and parses back through Math.fround; any other double prints with a `d` suffix
 *   (`0.1d`) and parses back as that double.
 */
import type { DType } from './dtype';
import { isFloat, usesF32Storage } from './dtype';
import type { Dim, Placement, TensorType } from './graph';

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Names that may print bare where a name is expected (graph, attribute and domain names). */
const DOTTED_IDENT = /^[A-Za-z_][A-Za-z0-9_.]*$/;

/** Decimal text of a double that reads back exactly: plain, or with an exponent (Python's repr
 * rule) below 1e-4 and from 1e16 on; integral values get '.0' so they read as floats. */
function decimal(x: number): string {
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-4 || a >= 1e16)) return x.toExponential().replace('e+', 'e');
  const s = String(x);
  return /^-?\d+$/.test(s) ? `${s}.0` : s;
}

function specialFloat(v: number): string | undefined {
  if (v !== v) return 'nan';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  if (v === 0 && Object.is(v, -0)) return '-0.0';
  return undefined;
}

/** Shortest decimal that reads back (through Math.fround) as the float32 value `v`. */
export function formatF32(v: number): string {
  const sp = specialFloat(v);
  if (sp) return sp;
  for (let p = 1; p <= 9; p++) {
    const s = v.toPrecision(p);
    const back = Number(s);
    if (Math.fround(back) === v) return decimal(back);
  }
  return decimal(v);
}

/** Shortest decimal that reads back as the double `v`. */
function formatF64(v: number): string {
  return specialFloat(v) ?? decimal(v);
}

/** A float attribute value (see the file header). */
export function formatFloatAttr(v: number): string {
  if (v !== v || !Number.isFinite(v) || Math.fround(v) === v) return formatF32(v);
  return `${formatF64(v)}d`;
}

/** One data element of a tensor of dtype `d`. */
export function formatElement(d: DType, v: number): string {
  if (d === 'bool') return v ? 'true' : 'false';
  if (!isFloat(d)) return String(v === 0 ? 0 : v);
  return usesF32Storage(d) ? formatF32(v) : formatF64(v);
}

/** A string literal (JSON escaping). */
export function quote(s: string): string {
  return JSON.stringify(s);
}

/** A name where the grammar accepts an identifier (dots allowed) or a string. */
export function formatName(s: string): string {
  return DOTTED_IDENT.test(s) ? s : quote(s);
}

function formatDim(d: Dim): string {
  return typeof d === 'number' ? String(d) : IDENT.test(d) ? d : quote(d);
}

/**
 * `@replicated`, `@shard(1,ulysses)`, one more `@shard(axis,meshAxis)` per extra sharded axis
 * (Placement's `also`), then `@tokens(axis:[segments]/chunks)` for a rank-chunk token order
 * (`@tokens(2,3:[...]/c)` when it covers more axes: a 2-D mask), then
 * `@partial(reduce,meshAxis)` for a local reduction that awaits its all_reduce.
 */
function formatPlacement(p: Placement | undefined): string {
  if (!p) return '';
  const shard = (axis: number, meshAxis: string): string => `@shard(${axis},${IDENT.test(meshAxis) ? meshAxis : quote(meshAxis)})`;
  let s = p.kind === 'replicated' ? '@replicated' : shard(p.axis, p.meshAxis) + (p.also ?? []).map((a) => shard(a.axis, a.meshAxis)).join('');
  if (p.tokens) s += `@tokens(${[p.tokens.axis, ...(p.tokens.also ?? [])].join(',')}:[${p.tokens.segments.join(',')}]/${p.tokens.chunks})`;
  if (p.partial) s += `@partial(${p.partial.reduce},${IDENT.test(p.partial.meshAxis) ? p.partial.meshAxis : quote(p.partial.meshAxis)})`;
  return s;
}

/** `f32[B,256,64]`, `bf16[1,4096,3072]@shard(1,ulysses)`. */
export function formatTensorType(t: TensorType): string {
  return `${t.dtype}[${t.shape.map(formatDim).join(',')}]${formatPlacement(t.placement)}`;
}

// ---------------------------------------------------------------------------------------------
// Hints: provenance names in trailing `#` comments. A hint is a comma-separated list of names,
// each bare when it has no space, comma or quote, else a JSON string ("" for an empty name).

const BARE_HINT = /^[^\s,"#]+$/;

export function formatHint(names: readonly string[]): string {
  return names.map((n) => (BARE_HINT.test(n) ? n : quote(n))).join(', ');
}

/** Reads a hint back; undefined when it is not a well-formed name list (a free comment). */
export function parseHint(text: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  const n = text.length;
  const skipSpace = (): void => {
    while (i < n && /\s/.test(text[i]!)) i++;
  };
  skipSpace();
  if (i === n) return [];
  for (;;) {
    skipSpace();
    if (text[i] === '"') {
      let j = i + 1;
      while (j < n && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      try {
        out.push(JSON.parse(text.slice(i, j + 1)) as string);
      } catch {
        return undefined;
      }
      i = j + 1;
    } else {
      let j = i;
      while (j < n && text[j] !== ',' && !/\s/.test(text[j]!)) j++;
      if (j === i) return undefined;
      out.push(text.slice(i, j));
      i = j;
    }
    skipSpace();
    if (i === n) return out;
    if (text[i] !== ',') return undefined;
    i++;
  }
}
