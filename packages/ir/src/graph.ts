/**
 * The IR: an immutable typed dataflow graph in the spirit of torch.fx and ONNX.
 *
 * - A Value is an SSA value: a graph input, a constant (initializer), or one output of one node.
 *   Values are compared by identity; `name` is only a hint for printing and export.
 * - A Node applies one op (an OpKind from ops/op-kinds.ts) to input values (null = omitted
 *   optional input) and defines its output values. `name` is the ONNX node name it came from
 *   (provenance for every error message downstream).
 * - A Graph lists its nodes in topological order. Subgraphs (If branches) are Graph-valued
 *   attributes and may read values of enclosing graphs.
 * - A Module is a graph plus the opset imports and metadata of the model it came from.
 *
 * Everything is readonly and frozen; passes build new graphs with GraphBuilder.
 */
import type { DType } from './dtype';
import { Tensor } from './tensor';
import type { OpKind } from './ops/op-kinds';

/** A dimension: a size, or a symbol (ONNX dim_param) for a size not known at compile time. */
export type Dim = number | string;

/** One more tensor axis split evenly over one more mesh axis (see Placement's `also`). */
export interface AxisShard {
  readonly axis: number;
  readonly meshAxis: string;
}

/**
 * A token axis in rank-chunk order (context parallelism, mesh.ts/placement.ts): the natural order
 * is the consecutive `segments` (global token counts of the streams, e.g. [text, image]); each
 * segment is padded to a multiple of `chunks` and cut into `chunks` equal parts; chunk p holds
 * part p of every segment side by side, and the axis lists chunks 0..chunks-1 in order. Padding
 * tokens are masked out of attention keys and dropped when gathering back to natural order.
 */
export interface TokenOrder {
  readonly axis: number;
  readonly segments: readonly number[];
  readonly chunks: number;
  /**
   * More axes in the same order, sorted (a 2-D attention mask: its query rows and its key columns
   * follow the same joint token order). Absent for the usual single token axis.
   */
  readonly also?: readonly number[];
}

/** A partial result: the ranks of `meshAxis` each hold a part that an all_reduce(`reduce`) completes. */
export interface PartialReduce {
  readonly meshAxis: string;
  readonly reduce: 'sum' | 'max' | 'mean';
}

/**
 * How a value is laid out over a device mesh (context-parallel passes). `sharded` splits `axis`
 * evenly over `meshAxis` (and each of `also`, sorted by axis, over its own mesh axis); `tokens`
 * says that axis is in rank-chunk order rather than natural order; `partial` marks a local
 * reduction awaiting its all_reduce. Absent = replicated.
 */
export type Placement =
  | { readonly kind: 'replicated'; readonly tokens?: TokenOrder; readonly partial?: PartialReduce }
  | {
      readonly kind: 'sharded';
      readonly axis: number;
      readonly meshAxis: string;
      readonly also?: readonly AxisShard[];
      readonly tokens?: TokenOrder;
      readonly partial?: PartialReduce;
    };

export interface TensorType {
  readonly dtype: DType;
  readonly shape: readonly Dim[];
  readonly placement?: Placement;
}

export function tensorType(dtype: DType, shape: readonly Dim[], placement?: Placement): TensorType {
  const t: TensorType = placement ? { dtype, shape: Object.freeze([...shape]), placement } : { dtype, shape: Object.freeze([...shape]) };
  return Object.freeze(t);
}

export function isStaticShape(shape: readonly Dim[]): shape is readonly number[] {
  return shape.every((d) => typeof d === 'number');
}

export function formatType(t: TensorType): string {
  return `${t.dtype}[${t.shape.join(',')}]`;
}

/** Where a constant's bytes come from; lets a 2.6 GB model be inspected without reading it. */
type ConstSource =
  | { readonly kind: 'inline' }
  | { readonly kind: 'external'; readonly file: string; readonly offset: number; readonly length: number }
  /**
   * Seeded data: `--random-weights`, or (standIn) a graph-only import's placeholder for absent
   * external weights, which is never reported as values and counts as a weights-file tensor.
   */
  | { readonly kind: 'random'; readonly seed: number; readonly standIn?: boolean };

/** Constant data with a lazy loader; loads at most once. */
export class ConstData {
  private cached: Tensor | undefined;
  constructor(
    readonly type: TensorType,
    readonly source: ConstSource,
    private readonly loader: () => Tensor,
  ) {}

  static of(t: Tensor): ConstData {
    const c = new ConstData(tensorType(t.dtype, t.shape), { kind: 'inline' }, () => t);
    c.cached = t;
    return c;
  }

  get loaded(): boolean {
    return this.cached !== undefined;
  }

  tensor(): Tensor {
    if (!this.cached) this.cached = this.loader();
    return this.cached;
  }
}

let nextValueId = 1;

export class Value {
  readonly id: number;
  constructor(
    readonly type: TensorType,
    readonly name: string = '',
    /** Set for constants (initializers and folded values). */
    readonly constant?: ConstData,
  ) {
    this.id = nextValueId++;
    Object.freeze(this);
  }

  get dtype(): DType {
    return this.type.dtype;
  }

  get shape(): readonly Dim[] {
    return this.type.shape;
  }
}

export type AttrValue =
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'tensor'; readonly value: Tensor }
  | { readonly kind: 'graph'; readonly value: Graph }
  | { readonly kind: 'floats'; readonly value: readonly number[] }
  | { readonly kind: 'ints'; readonly value: readonly number[] }
  | { readonly kind: 'strings'; readonly value: readonly string[] }
  | { readonly kind: 'tensors'; readonly value: readonly Tensor[] }
  | { readonly kind: 'graphs'; readonly value: readonly Graph[] };

export type Attrs = Readonly<Record<string, AttrValue>>;

export class Node {
  constructor(
    readonly op: OpKind,
    readonly inputs: readonly (Value | null)[],
    readonly outputs: readonly Value[],
    readonly attrs: Attrs = {},
    /** ONNX node name (provenance); may be empty for nodes a pass created from nothing. */
    readonly name: string = '',
  ) {
    Object.freeze(this.inputs);
    Object.freeze(this.outputs);
    Object.freeze(this.attrs);
    Object.freeze(this);
  }

  /** "Add 'node_add_3'" for messages. */
  get label(): string {
    return this.name ? `${this.op} '${this.name}'` : this.op;
  }

  /** Graph-valued attributes, in attribute-name order. */
  subgraphs(): Graph[] {
    const out: Graph[] = [];
    for (const key of Object.keys(this.attrs).sort()) {
      const a = this.attrs[key]!;
      if (a.kind === 'graph') out.push(a.value);
      else if (a.kind === 'graphs') out.push(...a.value);
    }
    return out;
  }
}

export class Graph {
  constructor(
    readonly inputs: readonly Value[],
    readonly nodes: readonly Node[],
    readonly outputs: readonly Value[],
    readonly name: string = 'main',
  ) {
    Object.freeze(this.inputs);
    Object.freeze(this.nodes);
    Object.freeze(this.outputs);
    Object.freeze(this);
  }

  /** Constants used by this graph's nodes or outputs (not by its subgraphs), in first-use order. */
  constants(): Value[] {
    const seen = new Set<Value>();
    const out: Value[] = [];
    const visit = (v: Value | null): void => {
      if (v && v.constant && !seen.has(v)) {
        seen.add(v);
        out.push(v);
      }
    };
    for (const n of this.nodes) n.inputs.forEach(visit);
    this.outputs.forEach(visit);
    return out;
  }

  /** Map from each node-defined value to its defining node. */
  producers(): Map<Value, Node> {
    const m = new Map<Value, Node>();
    for (const n of this.nodes) for (const o of n.outputs) m.set(o, n);
    return m;
  }

  /** Map from each value to the nodes that read it (in this graph, not its subgraphs). */
  users(): Map<Value, Node[]> {
    const m = new Map<Value, Node[]>();
    for (const n of this.nodes) {
      for (const i of n.inputs) {
        if (!i) continue;
        const list = m.get(i);
        if (list) {
          if (list[list.length - 1] !== n) list.push(n);
        } else m.set(i, [n]);
      }
    }
    return m;
  }
}

interface ModuleMeta {
  readonly irVersion: number;
  readonly producerName: string;
  readonly producerVersion: string;
  /** Where the model was loaded from, when it was. */
  readonly source?: string;
  /** True when initializers were replaced by seeded random data. */
  readonly randomWeights?: boolean;
  /**
   * True when external weights were absent and the model was imported graph-only (shapes exact,
   * float weights stood in by seeded data that nothing may report as the model's values).
   */
  readonly absentWeights?: boolean;
}

export class Module {
  constructor(
    readonly graph: Graph,
    /** Opset version per domain ('' is the default ONNX domain). */
    readonly opsets: Readonly<Record<string, number>>,
    readonly meta: ModuleMeta = { irVersion: 10, producerName: 'paradit', producerVersion: '0.1.0' },
  ) {
    Object.freeze(this.opsets);
    Object.freeze(this);
  }

  get opset(): number {
    return this.opsets[''] ?? this.opsets['ai.onnx'] ?? 0;
  }

  withGraph(graph: Graph): Module {
    return graph === this.graph ? this : new Module(graph, this.opsets, this.meta);
  }
}
