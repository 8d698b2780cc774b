/**
 * Content keys for constants and attributes, used by eliminate-common-subexpressions.
 *
 * A key is equal for equal contents. Keys of tensor data include a 32-bit FNV-1a hash of the raw
 * bytes (so -0 and +0, or two NaN payloads, are different: merging must never change a bit);
 * callers that merge on a hashed key confirm with `sameBytes`.
 */
import type { AttrValue, Attrs, ConstData, Tensor } from '@paradit/ir';
import { constantHash, isElided, numel } from '@paradit/ir';

function words(t: Tensor): Int32Array {
  const d = t.data;
  return new Int32Array(d.buffer, d.byteOffset, d.byteLength >> 2);
}

/**
 * FNV-1a over the tensor's 32-bit storage words. The multiply by the FNV prime is spelled as
 * shifts: Math.imul is ~100x slower under jest's vm sandbox, and this loop sees every weight.
 */
function hashTensor(t: Tensor): number {
  const w = words(t);
  let h = 0x811c9dc5 | 0;
  for (let i = 0; i < w.length; i++) {
    h ^= w[i]!;
    h = (h + (h << 1) + (h << 4) + (h << 7) + (h << 8) + (h << 24)) | 0;
  }
  return h >>> 0;
}

/** Same dtype, shape and storage bits. */
export function sameBytes(a: Tensor, b: Tensor): boolean {
  if (a.dtype !== b.dtype || a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) return false;
  const wa = words(a);
  const wb = words(b);
  if (wa.length !== wb.length) return false;
  for (let i = 0; i < wa.length; i++) if (wa[i] !== wb[i]) return false;
  return true;
}

/**
 * A key for a constant, never loading a big one: by content (hashed; confirm with sameBytes) when
 * it is small or already loaded; by its file range when it is a big external one (equal ranges
 * hold equal bytes). Undefined for any other big constant, which is then never merged: a seeded
 * random weight's data depends on its initializer name, which its source does not record, and
 * decoding a big inline one just to compare is not worth it. `exact`: equal keys mean equal data.
 */
export function constantKey(c: ConstData, maxContentElements: number): { key: string; exact: boolean } | undefined {
  const type = `${c.type.dtype}[${c.type.shape.join(',')}]`;
  const shape = c.type.shape;
  // Parsed from text with its data elided: only its printed content hash is known.
  if (isElided(c)) return { key: `hash:${type}:${constantHash(c)}`, exact: true };
  const small = shape.every((d) => typeof d === 'number') && numel(shape as number[]) <= maxContentElements;
  if (c.loaded || small) return { key: `data:${type}:${hashTensor(c.tensor())}`, exact: false };
  if (c.source.kind === 'external') return { key: `file:${type}:${c.source.file}:${c.source.offset}:${c.source.length}`, exact: true };
  return undefined;
}

function num(x: number): string {
  return Object.is(x, -0) ? '-0' : String(x);
}

/** Tensor attributes above this size make a node's key undefined (it is never merged). */
const ATTR_TENSOR_LIMIT = 4096;

/** A canonical string for attributes, or undefined when they hold something not compared (big tensors, graphs). */
export function attrsKey(attrs: Attrs): string | undefined {
  const parts: string[] = [];
  for (const k of Object.keys(attrs).sort()) {
    const s = attrKey(attrs[k]!);
    if (s === undefined) return undefined;
    parts.push(`${k}=${s}`);
  }
  return parts.join(';');
}

function tensorAttrKey(t: Tensor): string | undefined {
  if (t.size > ATTR_TENSOR_LIMIT) return undefined;
  return `${t.dtype}[${t.shape.join(',')}]{${Array.from(words(t)).join(',')}}`;
}

function attrKey(a: AttrValue): string | undefined {
  switch (a.kind) {
    case 'int':
    case 'float':
      return `${a.kind}:${num(a.value)}`;
    case 'string':
      return `s:${JSON.stringify(a.value)}`;
    case 'ints':
    case 'floats':
      return `${a.kind}:[${a.value.map(num).join(',')}]`;
    case 'strings':
      return `ss:${JSON.stringify(a.value)}`;
    case 'tensor':
      return tensorAttrKey(a.value);
    case 'tensors': {
      const ks = a.value.map(tensorAttrKey);
      return ks.some((k) => k === undefined) ? undefined : `ts:[${ks.join('|')}]`;
    }
    case 'graph':
    case 'graphs':
      return undefined; // subgraphs are not compared: nodes holding them are never merged
    default:
      return assertNever(a);
  }
}

function assertNever(x: never): never {
  throw new Error(`unhandled attribute ${JSON.stringify(x)}`);
}
