/**
 * The reference interpreter: runs a Module on given inputs, node by node, using each op's `run`
 * rule. It frees each intermediate after its last use, checks every produced tensor against the
 * node's inferred type, and names the failing node in errors.
 */
import { Graph, Module, Node, Value, formatType, isStaticShape } from './graph';
import { Tensor } from './tensor';
import { OPS, AttrReader, makeFail } from './ops';
import type { RunCtx } from './ops/rule';
import { InternalError, IrError, wrapAt } from './errors';

interface RunOptions {
  /** Called after each node with its outputs (debugging, tracing). */
  readonly onNode?: (node: Node, outputs: readonly Tensor[]) => void;
}

type Env = Map<Value, Tensor>;

/** Runs `m` on inputs given in graph-input order or by input name. */
export function interpret(m: Module, inputs: readonly Tensor[] | ReadonlyMap<string, Tensor>, opts: RunOptions = {}): Tensor[] {
  const g = m.graph;
  const env: Env = new Map();
  const list = Array.isArray(inputs) ? inputs : undefined;
  if (list && list.length !== g.inputs.length) {
    throw new IrError('E_INPUT', `the model has ${g.inputs.length} inputs (${g.inputs.map((v) => v.name).join(', ')}), got ${list.length}`);
  }
  g.inputs.forEach((v, i) => {
    const t = list ? list[i] : (inputs as ReadonlyMap<string, Tensor>).get(v.name);
    if (!t) throw new IrError('E_INPUT', `missing value for model input '${v.name}' (${formatType(v.type)})`);
    checkInput(v, t);
    env.set(v, t);
  });
  return runGraph(g, env, m.opset, opts);
}

function checkInput(v: Value, t: Tensor): void {
  const ok =
    t.dtype === v.dtype &&
    t.shape.length === v.shape.length &&
    v.shape.every((d, i) => typeof d === 'string' || d === t.shape[i]);
  if (!ok) {
    throw new IrError(
      'E_INPUT',
      `input '${v.name}': the model expects ${formatType(v.type)}, got ${t.dtype}[${t.shape.join(',')}]; ` +
        'provide data of the declared dtype and shape (dimensions named by a symbol may take any size)',
    );
  }
}

/** Runs a graph whose inputs are already bound in `env` (outer-scope values may be bound too). */
export function runGraph(g: Graph, env: Env, opset: number, opts: RunOptions = {}): Tensor[] {
  // Last use of each value in this graph, so intermediates can be dropped early.
  const lastUse = new Map<Value, number>();
  g.nodes.forEach((n, i) => {
    for (const v of n.inputs) if (v) lastUse.set(v, i);
    for (const sg of n.subgraphs()) for (const v of capturedValues(sg)) lastUse.set(v, i);
  });
  const outputs = new Set(g.outputs);
  const read = (v: Value): Tensor => {
    const t = env.get(v);
    if (t) return t;
    if (v.constant) return v.constant.tensor();
    throw new IrError('E_RUNTIME', `value '${v.name || v.id}' is read before it is defined`);
  };
  g.nodes.forEach((node, i) => {
    const fail = makeFail(node);
    const ins = node.inputs.map((v) => (v ? read(v) : undefined));
    const ctx: RunCtx = {
      node,
      opset,
      numOutputs: node.outputs.length,
      attr: new AttrReader(node.attrs, fail),
      fail,
      inputs: ins,
      runSubgraph: (sg: Graph) => runGraph(sg, new Map(env), opset, opts),
    };
    let outs: Tensor[];
    try {
      outs = OPS[node.op].run(ctx);
    } catch (e) {
      if (e instanceof IrError) throw e;
      // Not a rejection of the operands (those are IrErrors from ctx.fail): a bug in the op's rule.
      throw wrapAt(e, `${node.label} (the interpreter's ${node.op} rule)`);
    }
    node.outputs.forEach((v, k) => {
      const t = outs[k];
      if (!t) throw new InternalError(`${node.label}: the interpreter produced ${outs.length} outputs, the node declares ${node.outputs.length}`, node.label);
      const shapeOk =
        t.shape.length === v.shape.length && v.shape.every((d, j) => typeof d === 'string' || d === t.shape[j]);
      if (t.dtype !== v.dtype || !shapeOk) {
        throw new InternalError(`${node.label}: the interpreter produced ${t.dtype}[${t.shape.join(',')}] but its type is ${formatType(v.type)} (interpreter and shape rule disagree)`, node.label);
      }
      env.set(v, t);
    });
    opts.onNode?.(node, outs);
    for (const v of node.inputs) {
      if (v && lastUse.get(v) === i && !outputs.has(v) && !v.constant && !g.inputs.includes(v)) env.delete(v);
    }
  });
  return g.outputs.map(read);
}

/** Values a subgraph reads that it does not define (captures from enclosing graphs). */
export function capturedValues(g: Graph): Set<Value> {
  const defined = new Set<Value>(g.inputs);
  const out = new Set<Value>();
  for (const n of g.nodes) {
    for (const v of n.inputs) if (v && !defined.has(v) && !v.constant) out.add(v);
    for (const sg of n.subgraphs()) for (const v of capturedValues(sg)) if (!defined.has(v)) out.add(v);
    for (const o of n.outputs) defined.add(o);
  }
  for (const v of g.outputs) if (!defined.has(v) && !v.constant) out.add(v);
  return out;
}

export { isStaticShape };
