/**
 * The fusion planner: walks a fragment's nodes in order and gives every value a lazy expression
 * (views fold into leaf strides, pointwise ops build expression trees, Concat becomes a select,
 * row-wise ops open a row kernel). A value gets a buffer only where it must: fragment outputs,
 * inputs of views that cannot be expressed lazily, and results of reductions. `finish` then turns
 * the materialized values (sinks) into kernel plans: epilogues and prologues of row kernels, or
 * pointwise kernels (see assign.ts).
 *
 * One fusion decision is still made here, on purpose: `mergeNorms` (Concat(norm(a), norm(b)) along
 * a non-normalized axis -> one row kernel over the concatenation; FLUX's q/k norms of the text and
 * image streams, whose epilogue then takes the rope). It stays in the renderer because the IR
 * cannot state the merged op without changing numerics or widening an op contract:
 * - the merged norm's weight differs per piece (FLUX: norm_added_q vs norm_q). rms_norm and
 *   layer_norm take `weight [D]` by contract (the shape rule and interpreter in ops/paradit-norm.ts,
 *   the shard rule lastAxisRule, the row kernels' operand layout all assume one row of weights), so
 *   a per-row weight [.., S, D] is a new op form in every table, and its sharding rule would have to
 *   split the weight with the tokens;
 * - the weight-free form, norm(Concat(a, b)) * Concat(expand(w_a), expand(w_b)), is not the same
 *   program: the norm's rule rounds its result to x's dtype before the multiply (bf16 twice instead
 *   of once), so interpreter(pass(m)) != interpreter(m), and keeping the kernel count would need
 *   this planner to re-fuse the Mul into the row kernel's epilogue, i.e. the decision again here.
 * The way out is the per-row weight form of the norms (issue 14 item 10; dev/builders.md lists it).
 */
import type { Graph, Node, OpKind, Value } from '@paradit/ir';
import { opsWith } from '@paradit/ir';
import { isStaticShape } from '@paradit/ir';
import type { Expr } from './expr';
import { contiguousStrides, freshId, isContiguousLeaf, leaf, withNodes } from './expr';
import { applyAffine, broadcastMap, permuteMap, pickMap, reshapeExpr, sliceMap } from './views';
import type { Affine } from './views';
import { scalarOpFor } from './scalar-ops';
import { RowPlan } from './row-plan';
import type { RowOp } from './row-plan';
import { CodegenError } from './codegen-error';
import { attrs, constInts, normAxis, reduceAxes, sliceSpec } from './plan-ops';
import { byteSizeOf, isFloatCompute } from './c-types';
import { INDEXED_LOWERINGS } from './indexed-ops';
import { LAYER_NORM_FALLBACK } from './indexed-nn';
import type { PlanAccess } from './indexed';
import { cudaPathOf } from '../lower/cuda-coverage';
import type { ScatterPlan, ScatterReduction } from './scatter-kernel';

/** Where a sink stores: a strided region of a value's buffer (elements). */
export interface StoreView {
  readonly value: Value;
  readonly strides: readonly number[];
  readonly offset: number;
}

/**
 * A value the fragment must write: its expression over `expr.shape`, stored contiguously into
 * the value's buffer, or into `target` (a region of another value: a piece of a Concat output).
 */
export interface Sink {
  readonly value: Value;
  expr: Expr;
  target?: StoreView;
}

export function storeViewOf(s: Sink): StoreView {
  return s.target ?? { value: s.value, strides: contiguousStrides(s.expr.shape), offset: 0 };
}

/** A reduction the row kernel cannot take: one thread per output, a loop over the reduced part. */
export interface LoopPlan {
  readonly op: RowOp;
  input: Expr;
  readonly axes: readonly number[];
  readonly out: Value;
  readonly nodes: readonly Node[];
  /** Rows too long for registers ([...rows, L], axes = [last]): one 1024-thread block per row. */
  readonly wide?: boolean;
}

interface Alias {
  readonly value: Value;
  readonly of: Value;
  readonly byteOffset: number;
  readonly nodes: readonly Node[];
}

const VIEW_OPS = opsWith('reshape', 'alias');
/** The ONNX reductions a row kernel computes (the rest of ReduceOp go through other paths). */
const REDUCE_OPS: Readonly<Partial<Record<OpKind, RowOp>>> = {
  ReduceSum: 'sum', ReduceMean: 'mean', ReduceMax: 'max', ReduceMin: 'min', ReduceSumSquare: 'sumsq',
  ReduceL1: 'l1', ReduceL2: 'l2', ReduceProd: 'prod',
};

const shapeOf = (v: Value): number[] => {
  if (!isStaticShape(v.shape)) throw new CodegenError(`value '${v.name}' has a symbolic shape [${v.shape.join(',')}]; kernels need static shapes`);
  return [...v.shape];
};

export class Planner {
  readonly exprs = new Map<Value, Expr>();
  readonly sinks: Sink[] = [];
  readonly rows: RowPlan[] = [];
  readonly loops: LoopPlan[] = [];
  readonly aliases: Alias[] = [];
  /** Copy-then-scatter: the copy is a sink into `out`, the scatter a kernel of its own after it. */
  readonly scatters: ScatterPlan[] = [];
  private readonly users: Map<Value, Node[]>;
  private readonly outputs: Set<Value>;
  private readonly inputs: Set<Value>;

  constructor(
    readonly graph: Graph,
    /** Default-domain opset of the model (0: unknown); ops whose semantics changed with it read it. */
    readonly opset = 0,
  ) {
    this.users = graph.users();
    this.outputs = new Set(graph.outputs);
    this.inputs = new Set(graph.inputs);
  }

  /** The planner as the indexed rules see it (indexed.ts). */
  readonly access: PlanAccess = { get: (v) => this.get(v), materialize: (v) => this.materialize(v), shape: shapeOf };

  get(v: Value): Expr {
    const e = this.exprs.get(v);
    if (e) return e;
    const shape = shapeOf(v);
    if (v.constant && v.constant.loaded && shape.reduce((a, b) => a * b, 1) === 1) {
      const c: Expr = { kind: 'const', id: freshId(), dtype: v.dtype, shape, nodes: [], v: Number(v.constant.tensor().data[0]) };
      this.exprs.set(v, c);
      return c;
    }
    if (!v.constant && !this.inputs.has(v)) throw new CodegenError(`value '${v.name}' is read before the fragment defines it`);
    const l = leaf(v, shape);
    this.exprs.set(v, l);
    return l;
  }

  /** Gives v a buffer (unless its expression already reads one contiguously) and returns the leaf. */
  materialize(v: Value): Expr {
    const e = this.get(v);
    if (e.kind === 'leaf' && isContiguousLeaf(e)) return e;
    this.sinks.push({ value: v, expr: e });
    const l = leaf(v, e.shape);
    this.exprs.set(v, l);
    return l;
  }

  /** Applies a view to v's expression, materializing v first when the view cannot be lazy. */
  private view(v: Value, f: (e: Expr) => Expr | undefined, node: Node): Expr {
    const got = f(this.get(v)) ?? f(this.materialize(v));
    if (!got) throw CodegenError.at(node, 'internal: a view of a contiguous buffer failed');
    return withNodes(got, [node]);
  }

  private set(node: Node, k: number, e: Expr): void {
    this.exprs.set(node.outputs[k]!, e);
  }

  run(): void {
    for (const node of this.graph.nodes) this.node(node);
    for (const v of this.graph.outputs) this.output(v);
  }

  private output(v: Value): void {
    if (this.inputs.has(v) || v.constant) return;
    const e = this.get(v);
    if (e.kind === 'leaf' && e.value === v) return; // already has its buffer
    if (e.kind === 'leaf' && isContiguousLeaf(e) && (e.offset * byteSizeOf(e.dtype)) % 16 === 0) {
      this.aliases.push({ value: v, of: e.value, byteOffset: e.offset * byteSizeOf(e.dtype), nodes: e.nodes });
      return;
    }
    this.sinks.push({ value: v, expr: e });
    this.exprs.set(v, leaf(v, e.shape));
  }

  private node(node: Node): void {
    const path = cudaPathOf(node.op);
    if (path?.kind === 'refused') throw CodegenError.at(node, path.reason);
    const out = node.outputs[0]!;
    const x = node.inputs[0] ?? undefined;
    if (VIEW_OPS.has(node.op)) {
      // An empty result (Reshape with allowzero to a 0 dim) has no elements to view.
      if (shapeOf(out).includes(0)) return this.set(node, 0, { kind: 'const', id: freshId(), dtype: out.dtype, shape: shapeOf(out), nodes: [node], v: 0 });
      return this.set(node, 0, this.view(x!, (e) => reshapeExpr(e, shapeOf(out)), node));
    }
    switch (node.op) {
      case 'Dropout':
        this.set(node, 0, this.get(x!));
        if (node.outputs[1]) this.set(node, 1, { kind: 'const', id: freshId(), dtype: node.outputs[1].dtype, shape: shapeOf(node.outputs[1]), nodes: [node], v: 1 });
        return;
      case 'Transpose': {
        const rank = x!.shape.length;
        const perm = attrs(node).optInts('perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
        return this.set(node, 0, this.view(x!, (e) => applyAffine(e, permuteMap(e.shape, perm)), node));
      }
      case 'Expand':
        return this.set(node, 0, this.view(x!, (e) => applyAffine(e, broadcastMap(e.shape, shapeOf(out))), node));
      case 'Slice': {
        const spec = sliceSpec(node, shapeOf(x!));
        return this.set(node, 0, this.view(x!, (e) => applyAffine(e, sliceMap(e.shape, shapeOf(out), spec.starts, spec.steps)), node));
      }
      case 'Split': {
        const axis = normAxis(node, attrs(node).int('axis', 0), x!.shape.length);
        let at = 0;
        node.outputs.forEach((o, k) => {
          const starts = shapeOf(x!).map((_, d) => (d === axis ? at : 0));
          at += shapeOf(o)[axis]!;
          const steps = starts.map(() => 1);
          this.set(node, k, this.view(x!, (e) => applyAffine(e, sliceMap(e.shape, shapeOf(o), starts, steps)), node));
        });
        return;
      }
      case 'Concat':
        return this.set(node, 0, this.concat(node));
      case 'Gather':
        return this.set(node, 0, this.gather(node));
      case 'rope':
        return this.set(node, 0, this.rope(node));
      case 'rms_norm':
      case 'layer_norm':
        return this.set(node, 0, this.norm(node));
      case 'LayerNormalization':
      case 'RMSNormalization':
        if (node.op === 'LayerNormalization' && !this.rowNormFits(node)) {
          LAYER_NORM_FALLBACK(node, this.access, this.opset).forEach((e, k) => e && this.set(node, k, e));
          return;
        }
        return this.set(node, 0, this.onnxNorm(node));
      case 'Softmax':
      case 'LogSoftmax':
        return this.set(node, 0, this.softmax(node));
      case 'ScatterElements':
      case 'ScatterND':
        return this.set(node, 0, this.scatter(node));
      default:
        break;
    }
    const red = REDUCE_OPS[node.op];
    if (red) return this.set(node, 0, this.reduce(node, red));
    const lowering = INDEXED_LOWERINGS[node.op];
    if (lowering) {
      lowering(node, this.access, this.opset).forEach((e, k) => e && this.set(node, k, e));
      return;
    }
    const ins = node.inputs.map((v) => v?.dtype ?? out.dtype);
    const sop = scalarOpFor(node, ins, out.dtype);
    if (!sop) {
      throw CodegenError.at(node, `op ${node.op} has no CUDA emitter for non-GEMM fragments (supported: pointwise math, norms, rope, softmax, reductions, views, Transpose/Slice/Split/Concat/Expand/Gather, scatters and the indexed ops of kernels/indexed-ops.ts)`);
    }
    const shape = shapeOf(out);
    const args = node.inputs.map((v) =>
      v ? this.view(v, (e) => applyAffine(e, broadcastMap(e.shape, shape)), node) : ({ kind: 'const', id: freshId(), dtype: out.dtype, shape, nodes: [], v: 0 } as Expr),
    );
    this.set(node, 0, { kind: 'map', id: freshId(), dtype: out.dtype, shape, nodes: [node], op: sop, args });
  }

  /** data copied into the output by a sink (fused with data's producers), then a scatter kernel. */
  private scatter(node: Node): Expr {
    const [data, ind, upd] = node.inputs as Value[];
    const out = node.outputs[0]!;
    const shape = shapeOf(out);
    const a = attrs(node);
    const reduction = a.string('reduction', 'none');
    if (!['none', 'add', 'mul', 'max', 'min'].includes(reduction)) throw CodegenError.at(node, `reduction must be none, add, mul, max or min, got '${reduction}'`);
    const elements = node.op === 'ScatterElements';
    this.scatters.push({
      copy: { value: out, expr: this.get(data!) },
      kind: elements ? 'elements' : 'nd',
      node,
      out,
      outShape: shape,
      indices: this.materialize(ind!),
      updates: this.materialize(upd!),
      axis: elements ? normAxis(node, a.int('axis', 0), shape.length) : 0,
      reduction: reduction as ScatterReduction,
    });
    return leaf(out, shape);
  }

  private concat(node: Node): Expr {
    const out = shapeOf(node.outputs[0]!);
    const axis = normAxis(node, attrs(node).int('axis', 1), out.length);
    const ins = node.inputs.filter((v): v is Value => !!v && shapeOf(v)[axis] !== 0);
    const merged = this.mergeNorms(node, ins, axis);
    if (merged) return merged;
    const pieces = ins.map((v) => this.get(v));
    const starts: number[] = [];
    let at = 0;
    for (const p of pieces) {
      starts.push(at);
      at += p.shape[axis]!;
    }
    if (pieces.length === 1) return withNodes(pieces[0]!, [node]);
    return { kind: 'select', id: freshId(), dtype: node.outputs[0]!.dtype, shape: out, nodes: [node], axis, starts, pieces };
  }

  /**
   * Concat(norm(a), norm(b), ...) along a non-normalized axis is norm(Concat(a, b, ...)) when the
   * norms agree (op, eps, weight, bias) and nothing else reads them: one row kernel, whose
   * epilogue can then take the rope that follows (FLUX's q/k of text and image tokens).
   */
  private mergeNorms(node: Node, ins: readonly Value[], axis: number): Expr | undefined {
    if (ins.length < 2 || axis === ins[0]!.shape.length - 1) return undefined;
    const plans = ins.map((v) => {
      const e = this.exprs.get(v);
      return e?.kind === 'row' && this.rows.includes(e.plan) && !e.plan.reduces && e.plan.outValue === v ? e.plan : undefined;
    });
    const p0 = plans[0];
    if (!p0 || p0.op === 'softmax' || p0.op === 'log_softmax') return undefined;
    const same = (a: Expr | undefined, b: Expr | undefined): boolean =>
      a === b || (a?.kind === 'leaf' && b?.kind === 'leaf' && a.value === b.value && a.offset === b.offset) || (a?.kind === 'const' && b?.kind === 'const' && a.v === b.v);
    const ok = plans.every(
      (p, i) =>
        p && p.op === p0.op && p.eps === p0.eps && p.outDtype === p0.outDtype && p.input.dtype === p0.input.dtype &&
        (this.users.get(ins[i]!) ?? []).length === 1 && !this.outputs.has(ins[i]!),
    );
    if (!ok) return undefined;
    const out = node.outputs[0]!;
    const shape = shapeOf(out);
    const starts: number[] = [];
    let at = 0;
    for (const p of plans) {
      starts.push(at);
      at += p!.shape[axis]!;
    }
    const input: Expr = { kind: 'select', id: freshId(), dtype: p0.input.dtype, shape, nodes: [node], axis, starts, pieces: plans.map((p) => p!.input) };
    // Affine operands: shared ones broadcast to the concat shape; differing ones (q-norm of the
    // text and image streams) become a select along the concat axis, like the input.
    const affine = (pick: (p: RowPlan) => Expr | undefined, unit: number): Expr | undefined => {
      const ws = plans.map((p) => pick(p!));
      if (ws.every((w) => !w)) return undefined;
      const w0 = lastDimOf(ws[0]);
      if (ws.every((w) => same(lastDimOf(w), w0))) return applyAffine(w0!, broadcastMap([shape[shape.length - 1]!], shape));
      const dtype = ws.find((w) => w)!.dtype;
      const pieces = ws.map((w, i): Expr => w ?? { kind: 'const', id: freshId(), dtype, shape: plans[i]!.shape, nodes: [], v: unit });
      return { kind: 'select', id: freshId(), dtype, shape, nodes: [], axis, starts, pieces };
    };
    const nodes = [...plans.flatMap((p) => p!.nodes), node];
    const plan = new RowPlan(p0.op, input, affine((p) => p.weight, 1), affine((p) => p.bias, 0), p0.eps, out, out.dtype, nodes);
    for (const p of plans) this.rows.splice(this.rows.indexOf(p!), 1);
    this.rows.push(plan);
    return { kind: 'row', id: freshId(), dtype: out.dtype, shape, nodes: [], plan };
  }

  private gather(node: Node): Expr {
    const x = node.inputs[0]!;
    const ind = node.inputs[1]!;
    const axis = normAxis(node, attrs(node).int('axis', 0), x.shape.length);
    const xs = shapeOf(x);
    const size = xs[axis]!;
    if (ind.constant) {
      const vals = constInts(node, 1, 'indices')!.map((i) => (i < 0 ? i + size : i));
      if (vals.some((i) => i < 0 || i >= size)) throw CodegenError.at(node, `an index is out of range for axis ${axis} of size ${size}`);
      if (ind.shape.length === 0) return this.view(x, (e) => applyAffine(e, pickMap(e.shape, axis, vals[0]!)), node);
      const step = vals.length > 1 ? vals[1]! - vals[0]! : 1;
      if (ind.shape.length === 1 && vals.every((v, i) => v === vals[0]! + i * step)) {
        const starts = xs.map((_, d) => (d === axis ? vals[0]! : 0));
        const steps = xs.map((_, d) => (d === axis ? step : 1));
        return this.view(x, (e) => applyAffine(e, sliceMap(e.shape, shapeOf(node.outputs[0]!), starts, steps)), node);
      }
    }
    const idx = this.get(ind);
    const xe = this.get(x);
    return { kind: 'gather', id: freshId(), dtype: x.dtype, shape: shapeOf(node.outputs[0]!), nodes: [node], x: xe, idx, axis };
  }

  private rope(node: Node): Expr {
    const [x, cos, sin] = node.inputs as Value[];
    const a = attrs(node);
    const style = a.string('style') as 'rotate_half' | 'interleaved';
    const layout = a.string('layout');
    const shape = shapeOf(node.outputs[0]!);
    const table = (t: Value): Expr => {
      const ts = shapeOf(t);
      const C = ts[ts.length - 1]!;
      let aligned: number[];
      if (ts.length === 2) aligned = layout === 'BNSH' ? [1, 1, ts[0]!, C] : [1, ts[0]!, 1, C];
      else if (ts.length === 3) aligned = layout === 'BNSH' ? [ts[0]!, 1, ts[1]!, C] : [ts[0]!, ts[1]!, 1, C];
      else aligned = ts;
      const target = [...shape.slice(0, 3), C];
      const perm: Affine = ts.length === 4 ? broadcastMap(ts, target) : alignMap(ts, aligned, target);
      return this.view(t, (e) => applyAffine(e, perm), node);
    };
    return { kind: 'rope', id: freshId(), dtype: x!.dtype, shape, nodes: [node], style, x: this.get(x!), cos: table(cos!), sin: table(sin!) };
  }

  private norm(node: Node): Expr {
    const [x, w, bias] = node.inputs;
    const shape = shapeOf(node.outputs[0]!);
    const D = shape[shape.length - 1]!;
    if (!RowPlan.fits(D)) throw CodegenError.at(node, `rows of ${D} elements do not fit the register-resident norm kernel (at most 65536)`);
    const bc = (v: Value | null | undefined): Expr | undefined => (v ? this.view(v, (e) => applyAffine(e, broadcastMap(e.shape, shape)), node) : undefined);
    const eps = attrs(node).float('eps');
    const plan = new RowPlan(node.op as RowOp, this.get(x!), bc(w), node.op === 'layer_norm' ? bc(bias) : undefined, eps, node.outputs[0]!, node.outputs[0]!.dtype, [node]);
    this.rows.push(plan);
    return { kind: 'row', id: freshId(), dtype: plan.outDtype, shape, nodes: [], plan };
  }

  /** The row kernel takes the ONNX norm: last axis only, rows that fit, statistics outputs unused. */
  private rowNormFits(node: Node): boolean {
    const shape = shapeOf(node.outputs[0]!);
    const axis = normAxis(node, attrs(node).int('axis', -1), shape.length);
    const statsUsed = node.outputs.slice(1).some((o) => (this.users.get(o) ?? []).length > 0 || this.outputs.has(o));
    return axis === shape.length - 1 && !statsUsed && RowPlan.fits(shape[axis]!);
  }

  /** ONNX LayerNormalization / RMSNormalization over the last axis only (the fused ops' form). */
  private onnxNorm(node: Node): Expr {
    const [x, scale, bias] = node.inputs;
    const shape = shapeOf(node.outputs[0]!);
    const a = attrs(node);
    const axis = normAxis(node, a.int('axis', -1), shape.length);
    if (axis !== shape.length - 1) throw CodegenError.at(node, `normalizing from axis ${axis} of [${shape.join(',')}] (several axes) has no kernel; only the last axis is supported`);
    if (node.outputs.slice(1).some((o) => (this.users.get(o) ?? []).length > 0 || this.outputs.has(o))) {
      throw CodegenError.at(node, 'the Mean/InvStdDev outputs are used; only the normalized output has a kernel');
    }
    const D = shape[axis]!;
    if (!RowPlan.fits(D)) throw CodegenError.at(node, `rows of ${D} elements do not fit the register-resident norm kernel (at most 65536)`);
    const bc = (v: Value | null | undefined): Expr | undefined => (v ? this.view(v, (e) => applyAffine(e, broadcastMap(e.shape, shape)), node) : undefined);
    const op: RowOp = node.op === 'LayerNormalization' ? 'layer_norm' : 'rms_norm';
    const plan = new RowPlan(op, this.get(x!), bc(scale), op === 'layer_norm' ? bc(bias) : undefined, a.float('epsilon', op === 'layer_norm' ? 1e-5 : 1e-5), node.outputs[0]!, node.outputs[0]!.dtype, [node]);
    this.rows.push(plan);
    return { kind: 'row', id: freshId(), dtype: plan.outDtype, shape, nodes: [], plan };
  }

  private softmax(node: Node): Expr {
    const x = node.inputs[0]!;
    const shape = shapeOf(x);
    // Opset >= 13 semantics (one axis); for the last axis they equal the older flattening ones.
    const axis = normAxis(node, attrs(node).int('axis', -1), shape.length);
    const op: RowOp = node.op === 'Softmax' ? 'softmax' : 'log_softmax';
    if (axis !== shape.length - 1 || !RowPlan.fits(shape[axis]!) || !isFloatCompute(x.dtype)) {
      this.loops.push({ op, input: this.get(x), axes: [axis], out: node.outputs[0]!, nodes: [node] });
      return leaf(node.outputs[0]!, shape);
    }
    const plan = new RowPlan(op, this.get(x), undefined, undefined, 0, node.outputs[0]!, x.dtype, [node]);
    this.rows.push(plan);
    return { kind: 'row', id: freshId(), dtype: x.dtype, shape, nodes: [], plan };
  }

  private reduce(node: Node, op: RowOp): Expr {
    const x = node.inputs[0]!;
    const out = node.outputs[0]!;
    const shape = shapeOf(x);
    const axes = reduceAxes(node, shape.length);
    if (axes.length === 0) {
      // noop_with_empty_axes with no axes: each output comes from one input element (squared for
      // ReduceSumSquare, |x| for ReduceL1, ...): a loop reduction over nothing computes exactly that.
      this.loops.push({ op, input: this.get(x), axes: [], out, nodes: [node] });
      return leaf(out, shapeOf(out));
    }
    const r = shape.length;
    const trailing = axes.every((a, i) => a === r - axes.length + i);
    const L = axes.reduce((p, a) => p * shape[a]!, 1);
    const rowShape = [...shape.slice(0, r - axes.length), L];
    if (trailing && op !== 'prod' && isFloatCompute(x.dtype) && RowPlan.fits(L)) {
      const input = this.view(x, (e) => reshapeExpr(e, rowShape), node);
      this.rows.push(new RowPlan(op, input, undefined, undefined, 0, out, out.dtype, [node]));
    } else if (trailing && op !== 'prod' && isFloatCompute(x.dtype)) {
      // E.g. First Block Cache's mean |a - b| over a whole activation: a block per output.
      const input = this.view(x, (e) => reshapeExpr(e, rowShape), node);
      this.loops.push({ op, input, axes: [rowShape.length - 1], out, nodes: [node], wide: true });
    } else {
      this.loops.push({ op, input: this.get(x), axes, out, nodes: [node] });
    }
    const l = leaf(out, shapeOf(out));
    return l;
  }
}

/** The last-dim vector of a broadcast weight ([D] strides), to compare weights of two norms. */
function lastDimOf(e: Expr | undefined): Expr | undefined {
  if (!e || e.kind !== 'leaf') return e?.kind === 'const' ? e : e;
  const r = e.shape.length;
  return { ...e, shape: [e.shape[r - 1]!], strides: [e.strides[r - 1]!] };
}

/** Maps a rope table of rank 2/3 to x's rank-4 positions (aligned shape), broadcast to target. */
function alignMap(ts: readonly number[], aligned: readonly number[], target: readonly number[]): Affine {
  // Each table dim lands on the aligned dim of the same size, in order (the unit dims are new).
  const coef = ts.map(() => new Array<number>(4).fill(0));
  let j = 0;
  ts.forEach((d, i) => {
    while (j < 4 && aligned[j] !== d) j++;
    if (d !== 1 || target[j] === 1) coef[i]![j] = d === 1 ? 0 : 1;
    j++;
  });
  return { shape: target, coef, off: ts.map(() => 0) };
}
