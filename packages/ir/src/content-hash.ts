/**
 * Content hashing: a small 64-bit streaming hash (two 32-bit multiply-rotate lanes, cross-mixed
 * at the end) and the content hash of constants and tensor attributes, which structural equality,
 * the printer (`<hash ...>` for large data) and the parser (elided data) share.
 *
 * Content hash of a constant, a pure function of the constant (never of whether it was loaded):
 * - inline data, or at most KNOWN_VALUE_LIMIT elements: dtype, shape and the element bits
 *   (NaN canonical; -0 kept for floats, folded into 0 for integers). Constants this small are read
 *   by shape inference anyway, so hashing their data costs no extra I/O.
 * - larger external or seeded-random constants: dtype, shape and the source (file, offset,
 *   length or seed), so a multi-GB model hashes without reading a byte.
 * Constants and tensors parsed from text whose data was elided carry the printed hash instead.
 */
import type { DType } from './dtype';
import { isFloat } from './dtype';
import { ConstData, isStaticShape, tensorType } from './graph';
import type { Dim, TensorType } from './graph';
import { KNOWN_VALUE_LIMIT } from './builder';
import { IrError } from './errors';
import { Tensor, numel } from './tensor';

// Module-level alias: global lookups are slow inside vm contexts (jest), and this is the hot path.
const imul = Math.imul;
const f64 = new Float64Array(1);
const f64Words = new Uint32Array(f64.buffer);
const CANON_NAN_F32 = 0x7fc00000;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Streaming 64-bit hash; feed words, numbers and strings, then `digest()` to 16 hex digits. */
export class Hasher64 {
  private a: number;
  private b: number;
  private count = 0;

  constructor(seed = 0) {
    this.a = 0x9747b28c ^ seed;
    this.b = 0x5bd1e995 ^ imul(seed, 0x27d4eb2f);
  }

  /** Mixes one 32-bit word (the low 32 bits of `w`). */
  word(w: number): void {
    let k = imul(w, 0xcc9e2d51);
    k = imul(rotl(k, 15), 0x1b873593);
    this.a = (imul(rotl(this.a ^ k, 13), 5) + 0xe6546b64) | 0;
    let j = imul(w, 0x85ebca77);
    j = imul(rotl(j, 17), 0xc2b2ae3d);
    this.b = (imul(rotl(this.b ^ j, 11), 9) + 0x52dce729) | 0;
    this.count++;
  }

  /** Mixes a number by its float64 bits (NaN canonical, -0 distinct from 0). */
  num(n: number): void {
    f64[0] = n !== n ? NaN : n;
    this.word(f64Words[0]!);
    this.word(f64Words[1]!);
  }

  /** Mixes a string, length first so that concatenations do not collide. */
  str(s: string): void {
    const n = s.length;
    this.word(n);
    let i = 0;
    for (; i + 1 < n; i += 2) this.word(s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16));
    if (i < n) this.word(s.charCodeAt(i));
  }

  digest(): string {
    let a = this.a ^ this.count;
    let b = this.b ^ imul(this.count, 0x9e3779b1);
    a = (a + b) | 0;
    b = (b + a) | 0;
    a = fmix(a);
    b = fmix(b);
    a = (a + b) | 0;
    b = (b + a) | 0;
    return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
  }
}

function hashTypeInto(h: Hasher64, dtype: DType, shape: readonly Dim[]): void {
  h.str(dtype);
  h.word(shape.length);
  for (const d of shape) {
    if (typeof d === 'number') h.num(d);
    else h.str(d);
  }
}

/** Element bits of a tensor, canonical as described in the file header. */
function hashDataInto(h: Hasher64, t: Tensor): void {
  const data = t.data;
  if (data instanceof Float32Array) {
    const words = new Uint32Array(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i < words.length; i++) {
      const w = words[i]!;
      h.word((w & 0x7f800000) === 0x7f800000 && (w & 0x7fffff) !== 0 ? CANON_NAN_F32 : w);
    }
    return;
  }
  const words = new Uint32Array(data.buffer, data.byteOffset, data.length * 2);
  const keepNegZero = isFloat(t.dtype);
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    if (x !== x || (x === 0 && !keepNegZero)) h.num(x === 0 ? 0 : NaN);
    else {
      h.word(words[2 * i]!);
      h.word(words[2 * i + 1]!);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Per-object caches and elided data.

const HASHES = new WeakMap<object, string>();
const ELIDED = new WeakSet<object>();

/** The content hash of a tensor (dtype, shape, element bits); cached per tensor. */
export function tensorHash(t: Tensor): string {
  let s = HASHES.get(t);
  if (s === undefined) {
    const h = new Hasher64(1);
    hashTypeInto(h, t.dtype, t.shape);
    hashDataInto(h, t);
    s = h.digest();
    HASHES.set(t, s);
  }
  return s;
}

/** True when the constant's identity is its source rather than its bytes (see the file header). */
export function hashedBySource(c: ConstData): boolean {
  if (ELIDED.has(c) || c.source.kind === 'inline') return false;
  return !isStaticShape(c.type.shape) || numel(c.type.shape) > KNOWN_VALUE_LIMIT;
}

/** The content hash of a constant; cached per ConstData. May load small constants. */
export function constantHash(c: ConstData): string {
  let s = HASHES.get(c);
  if (s !== undefined) return s;
  if (hashedBySource(c)) {
    const h = new Hasher64(2);
    hashTypeInto(h, c.type.dtype, c.type.shape);
    const src = c.source;
    h.str(src.kind);
    if (src.kind === 'external') {
      h.str(src.file);
      h.num(src.offset);
      h.num(src.length);
    } else if (src.kind === 'random') h.num(src.seed);
    s = h.digest();
  } else {
    // Same function as tensorHash, so an inline constant and a tensor of equal data agree.
    s = tensorHash(c.tensor());
  }
  HASHES.set(c, s);
  return s;
}

/** True for constants and tensors made from `<hash ...>` text: their data is not available. */
export function isElided(x: ConstData | Tensor): boolean {
  return ELIDED.has(x);
}

function elidedError(what: string, type: string, hash: string): IrError {
  return new IrError(
    'E_INPUT',
    `${what} ${type} was read from IR text where its data was elided (<hash ${hash}>); its values are unknown. ` +
      'Print the module with a larger inlineLimit, or load the original model, to get the data.',
  );
}

/** A constant parsed from `<hash ...>`: compares equal by hash, throws when its data is read. */
export function elidedConstData(type: TensorType, hash: string): ConstData {
  const t = tensorType(type.dtype, type.shape);
  const shown = `${t.dtype}[${t.shape.join(',')}]`;
  const c = new ConstData(t, { kind: 'inline' }, () => {
    throw elidedError('constant', shown, hash);
  });
  ELIDED.add(c);
  HASHES.set(c, hash);
  return c;
}

/**
 * A tensor attribute parsed from `<hash ...>`. It is a Tensor (dtype, shape, rank work) whose
 * `data` throws the elided-data error; made without allocating the elements.
 */
export function elidedTensor(dtype: DType, shape: readonly number[], hash: string): Tensor {
  const shown = `${dtype}[${shape.join(',')}]`;
  const t = Object.create(Tensor.prototype) as Tensor;
  Object.defineProperty(t, 'dtype', { value: dtype, enumerable: true });
  Object.defineProperty(t, 'shape', { value: Object.freeze([...shape]), enumerable: true });
  Object.defineProperty(t, 'data', {
    get: () => {
      throw elidedError('tensor attribute', shown, hash);
    },
  });
  ELIDED.add(t);
  HASHES.set(t, hash);
  return t;
}
