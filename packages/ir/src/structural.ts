/**
 * Structural equality and hashing of graphs, modules and node regions.
 *
 * Two IRs are structurally equal when they have the same ops, attributes, types (dtype, shape,
 * placement in canonical form: absent equals replicated), wiring and constant contents, whatever their value names, node names (provenance),
 * graph names and module metadata. Values are numbered in definition order (graph inputs, then
 * for each node its subgraphs' values, then its outputs); constants are compared by type and
 * content hash (content-hash.ts), so one constant shared by two uses equals two equal copies.
 *
 * Symbolic dims compare up to a consistent renaming (numbered by first appearance): a symbol's
 * name only says which dims are equal, and the fresh symbols inference invents may be named by a
 * per-run counter, so `f32[B,4] + f32[B,4]` equals `f32[N,4] + f32[N,4]` but not
 * `f32[N,4] + f32[M,4]`.
 *
 * Both functions run one canonical encoder over the IR: `structuralHash` streams it into a 64-bit
 * hash, `structurallyEqual` compares the token streams exactly (only constant data goes through a
 * hash). Values read but not defined inside the encoded unit (captures of a standalone subgraph,
 * a region's inputs) are free operands numbered in first-use order.
 */
import type { AttrValue, Graph, Node, Placement, TensorType, Value } from './graph';
import { Module } from './graph';
import { Hasher64, constantHash, tensorHash } from './content-hash';
import type { Tensor } from './tensor';
import { isFloat } from './dtype';
import { numel } from './tensor';
import { canonicalDist, distOf } from './placement';

/** Where the encoder writes: a hasher, or a token list for exact comparison. */
interface Sink {
  str(s: string): void;
  num(n: number): void;
}

class TokenSink implements Sink {
  readonly tokens: (string | number)[] = [];
  str(s: string): void {
    this.tokens.push(s);
  }
  num(n: number): void {
    this.tokens.push(n);
  }
}

export interface RegionHashOptions {
  /**
   * Treat constants as opaque operands of their type (numbered in first-use order like other
   * free operands) instead of comparing their data: blocks that differ only in weights match.
   */
  readonly ignoreConstantData?: boolean;
  /**
   * With ignoreConstantData: constants for which this returns true keep their data in the hash
   * (typically shape-like constants; see `isShapeLikeConstant`).
   */
  readonly keepConstant?: (v: Value) => boolean;
}

/** Small non-float constants (shapes, axes, indices): structure rather than weights. */
export function isShapeLikeConstant(v: Value): boolean {
  const shape = v.shape;
  return !isFloat(v.dtype) && shape.every((d) => typeof d === 'number') && numel(shape as number[]) <= 64;
}

class Encoder {
  private readonly ids = new Map<Value, number>();
  private nextId = 0;
  /** Free operands (and, ignoring constant data, constants) in first-use order. */
  readonly free: Value[] = [];
  private readonly freeIds = new Map<Value, number>();
  private readonly symbols = new Map<string, number>();

  constructor(
    private readonly sink: Sink,
    private readonly opts: RegionHashOptions = {},
  ) {}

  define(v: Value): void {
    if (!this.ids.has(v)) this.ids.set(v, this.nextId++);
  }

  type(t: TensorType): void {
    this.sink.str(t.dtype);
    this.sink.num(t.shape.length);
    for (const d of t.shape) {
      if (typeof d === 'number') this.sink.num(d);
      else {
        let k = this.symbols.get(d);
        if (k === undefined) {
          k = this.symbols.size;
          this.symbols.set(d, k);
        }
        this.sink.str(`$${k}`);
      }
    }
    this.placement(t.placement);
  }

  /** Canonical (placement.ts): absent = replicated, shards sorted by axis, trivial orders dropped. */
  private placement(p: Placement | undefined): void {
    const d = canonicalDist(distOf(p));
    this.sink.num(d.shards.length);
    for (const s of d.shards) {
      this.sink.num(s.axis);
      this.sink.str(s.meshAxis);
    }
    const t = d.tokens;
    if (!t) this.sink.str('-');
    else {
      this.sink.str('tokens');
      this.sink.num(t.axis);
      this.sink.num(t.also?.length ?? 0);
      for (const a of t.also ?? []) this.sink.num(a);
      this.sink.num(t.chunks);
      this.sink.num(t.segments.length);
      for (const x of t.segments) this.sink.num(x);
    }
    // A partial result differs from a complete one (it still needs its all_reduce).
    if (d.partial) {
      this.sink.str('partial');
      this.sink.str(d.partial.reduce);
      this.sink.str(d.partial.meshAxis);
    }
  }

  operand(v: Value | null): void {
    if (v === null) return this.sink.str('_');
    const id = this.ids.get(v);
    if (id !== undefined) {
      this.sink.str('v');
      this.sink.num(id);
      return;
    }
    if (v.constant && !(this.opts.ignoreConstantData && !this.opts.keepConstant?.(v))) {
      this.sink.str('c');
      this.type(v.type);
      this.sink.str(constantHash(v.constant));
      return;
    }
    let f = this.freeIds.get(v);
    if (f === undefined) {
      f = this.free.length;
      this.freeIds.set(v, f);
      this.free.push(v);
    }
    this.sink.str(v.constant ? 'k' : 'f');
    this.sink.num(f);
    this.type(v.type);
  }

  private tensor(t: Tensor): void {
    this.sink.str(t.dtype);
    this.sink.str(t.shape.join(','));
    this.sink.str(tensorHash(t));
  }

  private attr(a: AttrValue): void {
    this.sink.str(a.kind);
    switch (a.kind) {
      case 'float':
      case 'int':
        return this.sink.num(a.value);
      case 'string':
        return this.sink.str(a.value);
      case 'tensor':
        return this.tensor(a.value);
      case 'graph':
        return this.graph(a.value);
      case 'floats':
      case 'ints':
        this.sink.num(a.value.length);
        for (const x of a.value) this.sink.num(x);
        return;
      case 'strings':
        this.sink.num(a.value.length);
        for (const x of a.value) this.sink.str(x);
        return;
      case 'tensors':
        this.sink.num(a.value.length);
        for (const x of a.value) this.tensor(x);
        return;
      case 'graphs':
        this.sink.num(a.value.length);
        for (const x of a.value) this.graph(x);
        return;
      default:
        return assertNever(a);
    }
  }

  node(n: Node): void {
    this.sink.str(n.op);
    // Trailing omitted inputs carry no meaning (the builder drops them too).
    let count = n.inputs.length;
    while (count > 0 && n.inputs[count - 1] === null) count--;
    this.sink.num(count);
    for (let i = 0; i < count; i++) this.operand(n.inputs[i]!);
    const keys = Object.keys(n.attrs).sort();
    this.sink.num(keys.length);
    for (const k of keys) {
      this.sink.str(k);
      this.attr(n.attrs[k]!);
    }
    this.sink.num(n.outputs.length);
    for (const o of n.outputs) {
      this.type(o.type);
      this.define(o);
    }
  }

  graph(g: Graph): void {
    this.sink.str('graph');
    this.sink.num(g.inputs.length);
    for (const v of g.inputs) {
      this.type(v.type);
      this.define(v);
    }
    this.sink.num(g.nodes.length);
    for (const n of g.nodes) this.node(n);
    this.sink.num(g.outputs.length);
    for (const v of g.outputs) this.operand(v);
  }

  module(m: Module): void {
    this.sink.str('module');
    const domains = normalizedOpsets(m.opsets);
    this.sink.num(domains.length);
    for (const [d, v] of domains) {
      this.sink.str(d);
      this.sink.num(v);
    }
    this.graph(m.graph);
  }
}

/** Opset imports with 'ai.onnx' folded into '' (the same default domain), sorted by domain. */
export function normalizedOpsets(opsets: Readonly<Record<string, number>>): [string, number][] {
  const m = new Map<string, number>();
  for (const [d, v] of Object.entries(opsets)) m.set(d === 'ai.onnx' ? '' : d, v);
  return [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function assertNever(x: never): never {
  throw new Error(`unexpected ${JSON.stringify(x)}`);
}

function encode(x: Graph | Module, sink: Sink): void {
  const e = new Encoder(sink);
  if (x instanceof Module) e.module(x);
  else e.graph(x);
}

const HASH_CACHE = new WeakMap<Graph | Module, string>();

/** 16 hex digits; equal for structurally equal IR (see the file header). Cached per object. */
export function structuralHash(x: Graph | Module): string {
  let s = HASH_CACHE.get(x);
  if (s === undefined) {
    const h = new Hasher64(3);
    encode(x, h);
    s = h.digest();
    HASH_CACHE.set(x, s);
  }
  return s;
}

/** Exact structural comparison (names ignored; constant data compared by content hash). */
export function structurallyEqual(a: Graph | Module, b: Graph | Module): boolean {
  if (a === b) return true;
  if (a instanceof Module !== b instanceof Module) return false;
  if (structuralHash(a) !== structuralHash(b)) return false; // fast reject; hashes are cached
  const sa = new TokenSink();
  const sb = new TokenSink();
  encode(a, sa);
  encode(b, sb);
  if (sa.tokens.length !== sb.tokens.length) return false;
  for (let i = 0; i < sa.tokens.length; i++) if (!Object.is(sa.tokens[i], sb.tokens[i])) return false;
  return true;
}

export interface RegionHash {
  readonly hash: string;
  /**
   * Values the region reads but does not define, in first-use order (with ignoreConstantData,
   * the opaque constants too): two regions with equal hashes correspond operand by operand.
   */
  readonly operands: readonly Value[];
}

/**
 * Hashes an ordered list of nodes as a region: inputs defined outside the list are numbered free
 * operands (by first use, with their types). Output names and the region's users are not part
 * of the hash. Used by block discovery to find repeated blocks that differ only in weights.
 */
export function hashRegion(nodes: readonly Node[], opts: RegionHashOptions = {}): RegionHash {
  const h = new Hasher64(4);
  const e = new Encoder(h, opts);
  h.num(nodes.length);
  for (const n of nodes) e.node(n);
  return { hash: h.digest(), operands: e.free };
}

/** `hashRegion(nodes, opts).hash`. */
export function hashNodes(nodes: readonly Node[], opts: RegionHashOptions = {}): string {
  return hashRegion(nodes, opts).hash;
}
