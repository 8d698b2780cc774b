/**
 * fold-symbolic-shapes: shape arithmetic over symbolic dims, resolved at compile time.
 *
 * Dynamic-shape exports compute view shapes at run time: Shape(x) -> Gather -> Unsqueeze ->
 * Concat -> Reshape. fold-constants cannot fold that when x has a symbolic dim, and shape
 * inference then gives the Reshape fresh symbols for every dim (even the static head count), so
 * q, k and v look unrelated and no fusion rule can match. This pass tracks the *elements* of such
 * i64 shape vectors as dims (a size, or a symbol of some value's type):
 *
 * - a vector whose elements are all sizes becomes a constant (then fold-constants goes on);
 * - a Reshape whose target resolves to dims gets that type (0 copies an input dim, -1 is solved
 *   when the symbols cancel), and its readers are re-inferred, so equal dims carry equal symbols.
 *   The Reshape keeps its run-time shape operand: the graph computes exactly what it did before.
 *   Expand and ConstantOfShape (a mask of ones over the image tokens) get their types the same way.
 *
 * - a Concat of tensors along a symbolic axis gets the sum of its inputs' dims as one symbol
 *   ("image_seq+text_seq", symbols sorted, size last), and a Slice along an axis whose bounds are
 *   tracked gets end - start (slicing [0, text_seq) and [text_seq, end) of that concat gives back
 *   text_seq and image_seq), so a joint attention's split streams keep their own symbols.
 *
 * Tracked: constants, Shape (start/end), Gather on axis 0 with constant indices, Unsqueeze and
 * Squeeze of one element, Concat on axis 0, Slice with constant bounds, integer Cast, Identity,
 * Add/Sub of dims (sums of symbols) and Mul/Div of dims (products such as "batch*4", see
 * fold-symbolic-dims.ts; a Div only when exact for every value of the symbols).
 *
 * Requires: nothing. Ensures: no Reshape whose target is a tracked vector keeps fresh symbols.
 *
 *     before:  %s = Shape(%x) : i64[3]                       (%x: f32[B,S,8])
 *              %b = Gather(%s, 0);  %l = Gather(%s, 1)
 *              %t = Concat(Unsqueeze(%b), Unsqueeze(%l), [2], [4]) : i64[4]
 *              %r = Reshape(%x, %t) : f32[r_0,r_1,r_2,r_3]
 *     after:   %r = Reshape(%x, %t) : f32[B,S,2,4]
 */
import { ConstData, Dim, Graph, GraphBuilder, Module, Node, Tensor, TensorType, Value, isStaticShape, numel, updateNode } from '@paradit/ir';
import type { Pass } from './pass';
import { VIEW_OPS } from './rewrite';
import { hasSubgraphs, resolveValue, substituteNode } from './graph-edit';
import { addDims, broadcastDims, derivedDim, divDims, mulDims, resolveReshape, subDims } from './fold-symbolic-dims';

export { resolveReshape } from './fold-symbolic-dims';

/** The known elements of an integer vector (or scalar) value. */
interface DimVector {
  readonly dims: readonly Dim[];
  readonly scalar: boolean;
}

interface SymbolicShapeEntry {
  readonly node: Node;
  /**
   * 'constant': the output became a constant; 'reshape'/'sum': the Reshape (Expand, ConstantOfShape),
   * Concat or Slice got the type `dims`; 'view': a Shape of a view now reads the view's input.
   */
  readonly how: 'constant' | 'reshape' | 'sum' | 'view';
  readonly dims: readonly Dim[];
}

const INT_TYPES = new Set(['i64', 'i32']);

/** Rewrites `g`; returns it unchanged (and no entries) when nothing resolves. */
export function foldSymbolicShapes(g: Graph, opset: number): { graph: Graph; entries: SymbolicShapeEntry[] } {
  const vecs = new Map<Value, DimVector>();
  const subst = new Map<Value, Value>();
  const touched = new Set<Value>();
  const entries: SymbolicShapeEntry[] = [];
  const nodes: Node[] = [];
  const views = new Map<Value, Node>();
  const named = namedDims(g);
  let changed = false;
  for (const n0 of g.nodes) {
    const n = substituteNode(n0, subst);
    if (n !== n0) changed = true;
    if (hasSubgraphs(n)) {
      nodes.push(n);
      continue;
    }
    if (VIEW_OPS.has(n.op)) views.set(n.outputs[0]!, n);
    const read = n.op === 'Shape' ? shapeThroughView(n, opset, views) : undefined;
    if (read) {
      nodes.push(...read.nodes);
      subst.set(n0.outputs[0]!, read.out);
      vecs.set(read.out, { dims: read.dims, scalar: false });
      entries.push({ node: n0, how: 'view', dims: read.dims });
      changed = true;
      continue;
    }
    const vec = n.outputs.length === 1 && INT_TYPES.has(n.outputs[0]!.dtype) ? trackNode(n, opset, vecs) : undefined;
    if (vec) {
      const out = n.outputs[0]!;
      vecs.set(out, vec);
      for (const d of vec.dims) if (typeof d === 'string') named.add(d);
      const sizes = vec.dims.every((d): d is number => typeof d === 'number');
      if (sizes && !n.inputs.every((v) => !v || v.constant) && isStaticShape(out.shape)) {
        const c = new Value(out.type, out.name, ConstData.of(Tensor.from(out.dtype, [...(out.shape as number[])], vec.dims as number[])));
        subst.set(n0.outputs[0]!, c);
        vecs.set(c, vec);
        entries.push({ node: n0, how: 'constant', dims: vec.dims });
        changed = true;
        continue;
      }
    }
    let next = n;
    let summed: TensorType | undefined;
    const resolved = shapedBy(n, opset, vecs, named);
    if (resolved && !sameDims(resolved, n.outputs[0]!.shape)) {
      next = withOutputTypes(n, [{ ...n.outputs[0]!.type, shape: resolved }], subst, touched, true);
      entries.push({ node: n0, how: 'reshape', dims: resolved });
    } else if ((n.op === 'Concat' || n.op === 'Slice') && !INT_TYPES.has(n.outputs[0]!.dtype) && (summed = sumType(n, opset, vecs, inputsTouched(n, touched)))) {
      next = withOutputTypes(n, [summed], subst, touched, true);
      if (next !== n) entries.push({ node: n0, how: 'sum', dims: summed.shape });
    } else if (!resolved && inputsTouched(n, touched)) {
      next = withOutputTypes(n, reinfer(n, opset), subst, touched);
    }
    if (next !== n) changed = true;
    nodes.push(next);
  }
  if (!changed) return { graph: g, entries };
  return { graph: new Graph(g.inputs, nodes, g.outputs.map((v) => resolveValue(subst, v)), g.name), entries };
}

export const foldSymbolicShapesPass: Pass = {
  name: 'fold-symbolic-shapes',
  description: 'resolves Shape/Gather/Concat arithmetic over symbolic dims: constant vectors, and Reshape types with shared symbols',
  run(m: Module, ctx) {
    const { graph, entries } = foldSymbolicShapes(m.graph, m.opset);
    ctx.instruments.report?.count('resolved', entries.length);
    return graph === m.graph ? m : m.withGraph(graph);
  },
};

/** One line per change: `Reshape 'view_3' -> [B,S,2,4] (reshape)`. */
export function formatSymbolicShapes(entries: readonly SymbolicShapeEntry[]): string {
  return [`fold-symbolic-shapes: ${entries.length} changes`, ...entries.map((e) => `  ${e.node.label} -> [${e.dims.join(',')}] (${e.how})`)].join('\n');
}

// ---------------------------------------------------------------------------------------------

function intAttr(n: Node, name: string, def: number): number {
  const a = n.attrs[name];
  return a && a.kind === 'int' ? a.value : def;
}

function intsAttr(n: Node, name: string): readonly number[] | undefined {
  const a = n.attrs[name];
  return a && a.kind === 'ints' ? a.value : undefined;
}

/** The integer contents of a small constant. */
function constInts(v: Value | null | undefined): number[] | undefined {
  if (!v?.constant || !INT_TYPES.has(v.dtype) || !isStaticShape(v.shape) || numel(v.shape) > 64) return undefined;
  return Array.from(v.constant.tensor().data);
}

function vectorOf(v: Value | null | undefined, vecs: ReadonlyMap<Value, DimVector>): DimVector | undefined {
  if (!v) return undefined;
  const known = vecs.get(v);
  if (known) return known;
  const c = constInts(v);
  return c && v.shape.length <= 1 ? { dims: c, scalar: v.shape.length === 0 } : undefined;
}

/** The dims an integer node computes, when its inputs are tracked. */
function trackNode(n: Node, opset: number, vecs: ReadonlyMap<Value, DimVector>): DimVector | undefined {
  const a = vectorOf(n.inputs[0], vecs);
  switch (n.op) {
    case 'Shape': {
      const shape = n.inputs[0]!.shape;
      const r = shape.length;
      const clamp = (i: number): number => Math.min(r, Math.max(0, i < 0 ? i + r : i));
      return { dims: shape.slice(clamp(intAttr(n, 'start', 0)), clamp(intAttr(n, 'end', r))), scalar: false };
    }
    case 'Identity':
      return a;
    case 'Cast':
      return a && INT_TYPES.has(n.inputs[0]!.dtype) ? a : undefined;
    case 'Gather': {
      const idx = constInts(n.inputs[1]);
      if (!a || a.scalar || !idx || intAttr(n, 'axis', 0) !== 0) return undefined;
      const picked = idx.map((i) => a.dims[i < 0 ? i + a.dims.length : i]);
      if (picked.some((d) => d === undefined)) return undefined;
      return { dims: picked as Dim[], scalar: n.inputs[1]!.shape.length === 0 };
    }
    case 'Unsqueeze': {
      const axes = opset >= 13 ? constInts(n.inputs[1]) : intsAttr(n, 'axes');
      return a && a.scalar && axes?.length === 1 && (axes[0] === 0 || axes[0] === -1) ? { dims: a.dims, scalar: false } : undefined;
    }
    case 'Squeeze':
      return a && !a.scalar && a.dims.length === 1 && n.outputs[0]!.shape.length === 0 ? { dims: a.dims, scalar: true } : undefined;
    case 'Concat': {
      if (intAttr(n, 'axis', 0) !== 0 && intAttr(n, 'axis', 0) !== -1) return undefined;
      const parts = n.inputs.map((v) => vectorOf(v, vecs));
      if (parts.some((p) => !p || p.scalar)) return undefined;
      return { dims: parts.flatMap((p) => [...p!.dims]), scalar: false };
    }
    case 'Slice':
      return a && !a.scalar ? sliceDims(n, opset, a.dims) : undefined;
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div':
      return a ? arith(n.op, a, vectorOf(n.inputs[1], vecs)) : undefined;
    default:
      return undefined;
  }
}

function sliceDims(n: Node, opset: number, dims: readonly Dim[]): DimVector | undefined {
  const starts = opset >= 10 ? constInts(n.inputs[1]) : intsAttr(n, 'starts');
  const ends = opset >= 10 ? constInts(n.inputs[2]) : intsAttr(n, 'ends');
  const axes = opset >= 10 ? (n.inputs[3] ? constInts(n.inputs[3]) : [0]) : (intsAttr(n, 'axes') ?? [0]);
  const steps = opset >= 10 && n.inputs[4] ? constInts(n.inputs[4]) : [1];
  if (!starts || !ends || !axes || !steps || starts.length !== 1 || axes[0] !== 0 || steps[0] !== 1) return undefined;
  const r = dims.length;
  const clamp = (i: number): number => Math.min(r, Math.max(0, i < 0 ? i + r : i));
  return { dims: dims.slice(clamp(starts[0]!), clamp(ends[0]!)), scalar: false };
}

/** Elementwise integer arithmetic on dims: sums of symbols (Add/Sub) and exact products (Mul/Div). */
function arith(op: string, a: DimVector, b: DimVector | undefined): DimVector | undefined {
  if (!b) return undefined;
  const len = Math.max(a.dims.length, b.dims.length);
  if ((a.dims.length !== len && a.dims.length !== 1) || (b.dims.length !== len && b.dims.length !== 1)) return undefined;
  const out: Dim[] = [];
  for (let i = 0; i < len; i++) {
    const x = a.dims[a.dims.length === 1 ? 0 : i]!;
    const y = b.dims[b.dims.length === 1 ? 0 : i]!;
    if ((op === 'Add' || op === 'Sub') && (typeof x === 'string' || typeof y === 'string')) {
      const r = op === 'Add' ? addDims(x, y) : subDims(x, y);
      if (r === undefined) return undefined;
      out.push(r);
    } else if (typeof x === 'number' && typeof y === 'number') {
      if (op === 'Div' && (y === 0 || x % y !== 0)) return undefined;
      out.push(op === 'Add' ? x + y : op === 'Sub' ? x - y : op === 'Mul' ? x * y : x / y);
    } else if (op === 'Mul' || op === 'Div') {
      // Products of symbols are named ("batch*4"); a Div is tracked only when exact for every value.
      const r = op === 'Mul' ? mulDims(x, y) : divDims(x, y);
      if (r === undefined) return undefined;
      out.push(r);
    } else return undefined;
  }
  return { dims: out, scalar: a.scalar && b.scalar };
}

/** The output dims of a Reshape, Expand or ConstantOfShape whose run-time shape operand is tracked. */
function shapedBy(n: Node, opset: number, vecs: ReadonlyMap<Value, DimVector>, named: ReadonlySet<string>): Dim[] | undefined {
  const k = n.op === 'ConstantOfShape' ? 0 : n.op === 'Reshape' || n.op === 'Expand' ? 1 : -1;
  const operand = k >= 0 ? n.inputs[k] : undefined;
  const target = operand && !operand.constant ? vecs.get(operand) : undefined;
  if (!target || target.scalar) return undefined;
  const x = n.inputs[0]!;
  const out =
    n.op === 'Reshape'
      ? resolveReshape(x.shape, target.dims, opset >= 14 && intAttr(n, 'allowzero', 0) === 1, named)
      : n.op === 'Expand'
        ? broadcastDims(x.shape, target.dims)
        : [...target.dims];
  return out && out.length === n.outputs[0]!.shape.length ? out : undefined;
}

/** The symbols naming some dim of g's values (a -1 may take one of them when it is a product). */
function namedDims(g: Graph): Set<string> {
  const out = new Set<string>();
  const add = (v: Value | null): void => {
    if (v) for (const d of v.shape) if (typeof d === 'string') out.add(d);
  };
  g.inputs.forEach(add);
  for (const n of g.nodes) n.outputs.forEach(add);
  return out;
}

function inputsTouched(n: Node, touched: ReadonlySet<Value>): boolean {
  return n.inputs.some((v) => v !== null && touched.has(v));
}

function sameDims(a: readonly Dim[], b: readonly Dim[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The types the op rule infers for `n` now. */
function reinfer(n: Node, opset: number): (TensorType | undefined)[] {
  try {
    const b = new GraphBuilder(opset);
    return b.add(n.op, n.inputs, n.attrs, { name: n.name, numOutputs: n.outputs.length }).map((v) => v.type);
  } catch {
    return [];
  }
}

/**
 * `n` with the given output types where they are acceptable: same dtype and rank, every size of
 * the old type kept, and no symbol the inputs do not carry (inference's fresh symbols would undo
 * the sharing this pass makes). A resolved Reshape type is taken as it is (its symbols come from
 * the target vector). Returns `n` itself when no output changes.
 */
function withOutputTypes(n: Node, types: readonly (TensorType | undefined)[], subst: Map<Value, Value>, touched: Set<Value>, resolvedReshape = false): Node {
  const known = new Set<Dim>(n.inputs.flatMap((v) => (v ? v.shape.filter((d) => typeof d === 'string') : [])));
  let outs: Value[] | undefined;
  n.outputs.forEach((o, i) => {
    const t = types[i];
    if (!t || t.dtype !== o.dtype || t.shape.length !== o.shape.length || sameDims(t.shape, o.shape)) return;
    const ok = t.shape.every((d, k) => (typeof o.shape[k] === 'number' ? d === o.shape[k] : typeof d === 'number' || known.has(d) || d === o.shape[k]));
    if (!ok && !resolvedReshape) return;
    outs ??= [...n.outputs];
    const v = new Value(o.type.placement ? { ...t, placement: o.type.placement } : { dtype: t.dtype, shape: t.shape }, o.name);
    outs[i] = v;
    subst.set(o, v);
    touched.add(v);
  });
  return outs ? updateNode(n, { outputs: outs }) : n;
}

/** Bounds at or past this count as "to the end" (torch exports INT64_MAX, tests often 2^31-1). */
const TO_END = 2 ** 31 - 1;

/**
 * The type of a Concat (sum of the inputs' dims on the axis) or a Slice (end - start on sliced
 * axes with tracked bounds) when it names symbols better than inference did; undefined otherwise.
 */
function sumType(n: Node, opset: number, vecs: ReadonlyMap<Value, DimVector>, touched: boolean): TensorType | undefined {
  // When an input's type changed, the recorded output type is stale: start from a fresh inference.
  const out = touched ? (reinfer(n, opset)[0] ?? n.outputs[0]!.type) : n.outputs[0]!.type;
  const x = n.inputs[0];
  if (!x) return undefined;
  const shape = [...out.shape];
  if (n.op === 'Concat') {
    const axis = intAttr(n, 'axis', 0);
    const a = axis < 0 ? axis + out.shape.length : axis;
    const dims = n.inputs.map((v) => v?.shape[a]);
    if (dims.some((d) => d === undefined) || !dims.some((d) => typeof d === 'string')) return undefined;
    shape[a] = (dims as Dim[]).reduce((p, d) => addDims(p, d));
  } else {
    if (opset < 10) return undefined;
    const starts = vectorOf(n.inputs[1], vecs);
    const ends = vectorOf(n.inputs[2], vecs);
    const axes = n.inputs[3] ? constInts(n.inputs[3]) : starts?.dims.map((_, i) => i);
    const steps = n.inputs[4] ? constInts(n.inputs[4]) : undefined;
    if (!starts || !ends || !axes || (steps && steps.some((k) => k !== 1))) return undefined;
    for (let i = 0; i < axes.length; i++) {
      const a = axes[i]! < 0 ? axes[i]! + x.shape.length : axes[i]!;
      const d = x.shape[a];
      let s = starts.dims[i];
      let e = ends.dims[i];
      if (d === undefined || s === undefined || e === undefined) return undefined;
      if (typeof d === 'number' && typeof s === 'number' && typeof e === 'number') continue; // inference did it
      if (typeof s === 'number' && s < 0) s = subDims(d, -s) ?? NaN;
      if (typeof e === 'number') e = e >= TO_END ? d : e < 0 ? (subDims(d, -e) ?? NaN) : e;
      if (Number.isNaN(s) || Number.isNaN(e)) return undefined;
      const len = subDims(e, s);
      if (len === undefined) return undefined;
      shape[a] = len;
    }
  }
  if (sameDims(shape, out.shape)) return undefined;
  // Only symbols inference invented are renamed; sizes never change.
  if (shape.some((d, i) => typeof out.shape[i] === 'number' && d !== out.shape[i])) return undefined;
  return { ...out, shape };
}

/**
 * Shape(x) of a view x = Reshape(y) (Flatten, Squeeze, Unsqueeze) whose symbolic dims each follow
 * from one dim of y (equal, or times/over a size: [batch*4,S,8] from [batch,4,S,8]) becomes a
 * Concat of Shape(y)'s elements, so a view kept only for its shape (diffusers' batch_to_head_dim
 * reads the shape of the [B*N,S,H] bmm output) dies. Undefined when every dim is a size (the
 * Shape folds anyway) or a dim does not follow.
 */
function shapeThroughView(n: Node, opset: number, views: ReadonlyMap<Value, Node>): { nodes: Node[]; out: Value; dims: Dim[] } | undefined {
  const x = n.inputs[0]!;
  const view = views.get(x);
  const y = view?.inputs[0];
  if (!y) return undefined;
  const r = x.shape.length;
  const clamp = (i: number): number => Math.min(r, Math.max(0, i < 0 ? i + r : i));
  const dims = x.shape.slice(clamp(intAttr(n, 'start', 0)), clamp(intAttr(n, 'end', r)));
  if (dims.every((d) => typeof d === 'number')) return undefined;
  const parts = dims.map((d) => (typeof d === 'number' ? d : derivedDim(y.shape, d)));
  if (parts.some((p) => p === undefined)) return undefined;
  const b = new GraphBuilder(opset);
  const i64 = (xs: readonly number[]): Value => b.constant(Tensor.from('i64', [xs.length], xs));
  const op = (o: string, ins: Value[], axis?: number): Value => b.add(o, ins, axis === undefined ? {} : { axis: { kind: 'int', value: axis } }, { name: n.name })[0]!;
  const shape = op('Shape', [y]);
  const pieces: Value[] = [];
  let sizes: number[] = [];
  for (const p of parts) {
    if (typeof p === 'number') {
      sizes.push(p);
      continue;
    }
    if (sizes.length) pieces.push(i64(sizes));
    sizes = [];
    let v = op('Gather', [shape, i64([p!.axis])], 0);
    if (p!.mul !== 1) v = op('Mul', [v, i64([p!.mul])]);
    if (p!.div !== 1) v = op('Div', [v, i64([p!.div])]);
    pieces.push(v);
  }
  if (sizes.length) pieces.push(i64(sizes));
  const out = pieces.length === 1 ? pieces[0]! : op('Concat', pieces, 0);
  return { nodes: [...b.build([]).nodes], out, dims };
}
