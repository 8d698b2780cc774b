/**
 * GraphBuilder: the only way new nodes are made. `add` checks operands through the op's shape rule
 * (which throws at once with a readable message) and creates typed output values. The builder
 * also tracks values known at compile time (small constants and what folds from them) so that
 * shape inputs such as Reshape's target shape are available to the rules. `buildNode` is `add`
 * for one node that a caller collects itself.
 *
 * `updateNode` is the one way to rebuild an existing node with some fields changed (inputs read
 * through a substitution, outputs renamed or trimmed, attributes edited): it returns the same node
 * when nothing changed, and does not re-infer (the verifier checks the result; use GraphBuilder or
 * rebuildModule when types must follow new operands). dev/builders.md maps the other helpers.
 */
import { Attrs, ConstData, Graph, Node, Placement, TensorType, Value, isStaticShape, tensorType } from './graph';
import { Tensor, numel } from './tensor';
import { OPS, AttrReader, makeFail, isOpKind } from './ops';
import type { OpKind } from './ops';
import type { InferCtx, NodeInfo, RunCtx } from './ops/rule';
import { IrError } from './errors';
import { isFloat } from './dtype';

/** Constants up to this many elements are read for shape inference; larger ones never are. */
export const KNOWN_VALUE_LIMIT = 1 << 16;

export interface AddOptions {
  /** ONNX node name (provenance). */
  readonly name?: string;
  /** Output count (default 1; ops with optional outputs may declare more). */
  readonly numOutputs?: number;
  /** Names for the output values (hints only). */
  readonly outputNames?: readonly string[];
  /** Declared output types to use when inference cannot tell (e.g. symbolic If branches). */
  readonly declared?: readonly (TensorType | undefined)[];
  /**
   * Placements of the outputs (per-rank programs): the rule infers local types, the caller states
   * how each output is placed (the SPMD verifier checks it against the sharding rule).
   */
  readonly placements?: readonly (Placement | undefined)[];
}

export class GraphBuilder {
  private readonly nodes: Node[] = [];
  private readonly inputs: Value[] = [];
  private readonly known: Map<Value, Tensor | null>;

  /**
   * @param opset version of the default ONNX domain the nodes follow
   * @param parent builder of the enclosing graph, for subgraphs (its known values are visible)
   */
  constructor(
    readonly opset: number,
    private readonly parent?: GraphBuilder,
  ) {
    this.known = new Map();
  }

  input(name: string, type: TensorType): Value {
    const v = new Value(type, name);
    this.inputs.push(v);
    return v;
  }

  /** A constant value from a tensor. */
  constant(t: Tensor, name = ''): Value {
    const v = new Value({ dtype: t.dtype, shape: t.shape }, name, ConstData.of(t));
    this.known.set(v, t);
    return v;
  }

  /** A constant whose data loads lazily (initializers). */
  lazyConstant(data: ConstData, name = ''): Value {
    return new Value(data.type, name, data);
  }

  /** The compile-time value of v, if known and small. */
  valueOf(v: Value): Tensor | undefined {
    const k = this.known.get(v);
    if (k !== undefined) return k ?? undefined;
    if (this.parent) {
      const p = this.parent.valueOf(v);
      if (p) return p;
    }
    let t: Tensor | undefined;
    // Only data already in memory (or integer data, which shapes are made of) is read: building a
    // graph must never load external weights (inspect of a 2.6 GB model reads none of them).
    const c = v.constant;
    if (c && isStaticShape(v.shape) && numel(v.shape) <= KNOWN_VALUE_LIMIT && (c.loaded || c.source.kind === 'inline' || !isFloat(v.dtype))) {
      t = c.tensor();
    }
    this.known.set(v, t ?? null);
    return t;
  }

  /** Adds a node and returns its outputs. Throws IrError when the operands are invalid. */
  add(op: OpKind | string, inputs: readonly (Value | null | undefined)[], attrs: Attrs = {}, opts: AddOptions = {}): Value[] {
    if (!isOpKind(op)) throw new IrError('E_UNSUPPORTED', `unsupported op '${op}'${opts.name ? ` (node '${opts.name}')` : ''}`, opts.name);
    const ins = inputs.map((v) => v ?? null);
    // Trailing omitted inputs carry no meaning; drop them so printing is canonical.
    while (ins.length > 0 && ins[ins.length - 1] === null) ins.pop();
    const numOutputs = opts.numOutputs ?? 1;
    const info: NodeInfo = { op, name: opts.name ?? '', attrs };
    const fail = makeFail(info);
    const values = ins.map((v) => (v ? this.valueOf(v) : undefined));
    const ctx: InferCtx = {
      node: info,
      opset: this.opset,
      numOutputs,
      attr: new AttrReader(attrs, fail),
      fail,
      inputs: ins.map((v) => v?.type),
      values,
    };
    const rule = OPS[op];
    let types = rule.infer(ctx);
    if (types.length < numOutputs) fail(`produces ${types.length} outputs, but the node declares ${numOutputs}`);
    types = types.slice(0, numOutputs).map((t, i) => withPlacement(refineWithDeclared(t, opts.declared?.[i]), opts.placements?.[i]));
    const outs = types.map((t, i) => new Value(t, opts.outputNames?.[i] ?? ''));
    const node = new Node(op, ins, outs, attrs, opts.name ?? '');
    this.nodes.push(node);
    this.tryFold(node, values, ctx);
    return outs;
  }

  /** Adds an already-made node (used by passes that copy nodes between graphs). */
  addNode(node: Node): void {
    this.nodes.push(node);
  }

  build(outputs: readonly Value[], name = 'main'): Graph {
    return new Graph([...this.inputs], [...this.nodes], [...outputs], name);
  }

  /** Evaluates a node whose inputs are all known and whose outputs are small. */
  private tryFold(node: Node, values: readonly (Tensor | undefined)[], ictx: InferCtx): void {
    if (node.op === 'If' || node.op === 'Dropout' || OPS[node.op].rankDependent) return;
    const fromTypes = OPS[node.op].fold?.(ictx);
    if (fromTypes) {
      node.outputs.forEach((o, i) => this.known.set(o, fromTypes[i] ?? null));
      return;
    }
    for (let i = 0; i < node.inputs.length; i++) if (node.inputs[i] && values[i] === undefined) return;
    for (const o of node.outputs) if (!isStaticShape(o.shape) || numel(o.shape) > KNOWN_VALUE_LIMIT) return;
    const rctx: RunCtx = {
      node: ictx.node,
      opset: ictx.opset,
      numOutputs: ictx.numOutputs,
      attr: ictx.attr,
      fail: ictx.fail,
      inputs: values,
      runSubgraph: () => ictx.fail('cannot fold a subgraph'),
    };
    const outs = OPS[node.op].run(rctx);
    node.outputs.forEach((o, i) => this.known.set(o, outs[i] ?? null));
  }
}

function refineWithDeclared(t: TensorType, d: TensorType | undefined): TensorType {
  if (!d || d.dtype !== t.dtype || d.shape.length !== t.shape.length) return t;
  // Replace inferred symbols with declared static sizes (never the other way round).
  if (t.shape.every((x) => typeof x === 'number')) return t;
  return { dtype: t.dtype, shape: t.shape.map((x, i) => (typeof x === 'string' && typeof d.shape[i] === 'number' ? d.shape[i]! : x)) };
}

function withPlacement(t: TensorType, p: Placement | undefined): TensorType {
  return p === undefined ? t : tensorType(t.dtype, t.shape, p);
}

/**
 * One new node whose output types come from the op's rule (GraphBuilder.add on a scratch
 * builder), for code that collects nodes itself. Compile-time values of the caller's graph are not
 * visible (no parent builder): use a GraphBuilder where a shape input must be read.
 */
export function buildNode(opset: number, op: OpKind | string, inputs: readonly (Value | null | undefined)[], attrs: Attrs = {}, opts: AddOptions = {}): Node {
  const b = new GraphBuilder(opset);
  b.add(op, inputs, attrs, opts);
  return b.build([]).nodes[0]!;
}

/** The fields of a node that `updateNode` may change. */
export interface NodeUpdate {
  readonly op?: OpKind;
  readonly inputs?: readonly (Value | null)[];
  readonly outputs?: readonly Value[];
  readonly attrs?: Attrs;
  readonly name?: string;
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** `n` with the given fields replaced; `n` itself when every given field equals n's. */
export function updateNode(n: Node, u: NodeUpdate): Node {
  const op = u.op ?? n.op;
  const inputs = u.inputs && !sameList(u.inputs, n.inputs) ? u.inputs : n.inputs;
  const outputs = u.outputs && !sameList(u.outputs, n.outputs) ? u.outputs : n.outputs;
  const attrs = u.attrs ?? n.attrs;
  const name = u.name ?? n.name;
  if (op === n.op && inputs === n.inputs && outputs === n.outputs && attrs === n.attrs && name === n.name) return n;
  return new Node(op, inputs, outputs, attrs, name);
}
