/**
 * mask-token-selection: rewrites data-dependent token selection around attention into
 * fixed-size attention with a key-padding mask (Mochi's attention keeps only the valid prompt
 * tokens: `nonzero` of the prompt mask, a gather of those rows of q/k/v, attention over the
 * shorter sequence, then a zero pad back to the full length).
 *
 * Requires: the graph as imported (symbolic dims from NonZero present; runs before canonicalize).
 * Ensures: no NonZero whose count reaches the data remains; every value has the shape it has when
 *   every token is valid; for each valid output element the result is exactly the original one.
 *
 * How. Let m be the 1-D mask NonZero reads (length T) and n its (symbolic) count.
 * 1. The selection: a Gather/GatherND whose indices derive from NonZero(m) selects n rows of a
 *    tensor along one axis. It becomes the identity (all T rows, in order); each such axis gets a
 *    validity vector (m != 0), and a Concat along it concatenates validity vectors (ones for rows
 *    that were never selected). Validity is tracked by the symbolic dim of the axis.
 * 2. Between selection and exit, ops must treat rows of that axis independently (elementwise,
 *    views that keep the axis, MatMul rows). Where an op mixes rows, it must be attention: a
 *    Softmax over the axis gets Where(valid, s, -inf) before it (an invalid key gets probability
 *    exactly 0), and a MatMul contracting over the axis reads zeros there (the masked Softmax's
 *    output, or Where(valid, a, 0)). Anything else is refused, naming the node.
 * 3. The exit: a Pad whose zeros extend the n rows back to a fixed length (the n valid rows first,
 *    in order). It becomes a compaction of the fixed-size result: output row j is the row of the
 *    j-th valid token (a Gather by index count(cumsum(valid) <= j)), and rows j >= count are zero.
 *    When the axis is [ones(S); mask(T)] (the image tokens, then the prompt), only the prompt part
 *    is compacted (a T x T index computation, not (S+T)^2).
 * The shape arithmetic between selection and exit (Shape of a selected tensor, sizes, pads) is
 * checked by replaying the graph twice, with every NonZero answering T and T-1 rows: values that
 * differ depend on the count and may only feed shapes (Reshape, Expand, ...) and the exit Pad's
 * pads, which must be zero at T rows and grow by exactly one at the end of the axis.
 *
 * Before (one batch element; S image tokens, T prompt tokens, n of them valid):
 *   %i = Reshape(Transpose(NonZero(%m)), [-1])        i64[n]
 *   %kt = Gather(%k_txt, %i) {axis: 2}                 f32[1,H,n,D]
 *   %k = Concat(%k_img, %kt) {axis: 2}                 f32[1,H,S+n,D]   (same for q, v)
 *   %p = Softmax(MatMul(%q, Transpose(%k)))            f32[1,H,S+n,S+n]
 *   %o = Pad(MatMul(%p, %v), pads(T - n at the end of axis 2))   f32[1,H,S+T,D]
 * After:
 *   %w = Concat(ones(S), Cast(%m, bool))               bool[S+T]
 *   %p = Softmax(Where(%w, MatMul(%q, Transpose(%k)), -inf))      f32[1,H,S+T,S+T]
 *   %o = Concat(%a[:, :, :S], compact(%a[:, :, S:], %m)) {axis: 2} with %a = MatMul(%p, %v)
 */
import { GraphBuilder, IrError, Module, Node, Tensor, Value, isStaticShape } from '@paradit/ir';
import { opsWith } from '@paradit/ir';
import type { Dim, OpKind } from '@paradit/ir';
import type { Pass } from './pass';
import { editNode, hasSubgraphs } from './graph-edit';
import { applyDcePlan, planDeadCode } from './eliminate-dead-code';

const PASS = 'mask-token-selection';

/** A run of rows along a tracked axis: rows that are always valid, or a NonZero's mask. */
type Segment = { readonly kind: 'ones'; readonly n: number } | { readonly kind: 'mask'; readonly sel: Node; readonly n: number };

function fail(message: string, node?: Node): never {
  const where = node ? `${node.op} '${node.name || node.outputs[0]?.name || '?'}'` : 'the graph';
  throw new IrError('E_UNSUPPORTED', `${PASS}: ${where}: ${message}`, node?.name);
}

/** Ops that treat the rows of every axis independently (output dims follow input dims). */
const ROWWISE = opsWith('rowwise');

/** Where each op reads shapes (count-dependent values may flow there). */
const SHAPE_INPUTS: Partial<Record<OpKind, readonly number[]>> = {
  Reshape: [1], Expand: [1], Tile: [1], ConstantOfShape: [0], Range: [0, 1, 2], Slice: [1, 2, 3, 4],
  Squeeze: [1], Unsqueeze: [1], Split: [1], Resize: [1, 2, 3], OneHot: [1],
};

/** Ops computing on small shape vectors: count-dependent inputs give count-dependent outputs. */
const SHAPE_MATH = opsWith('shapeMath');

const SMALL = 4096;

interface Selection {
  readonly node: Node;
  /** Tokens in its mask (T). */
  readonly length: number;
}

/** Replays the graph with every selecting NonZero answering `rows(sel)` rows; returns old -> new values. */
function replay(m: Module, rows: (sel: Selection) => number, sels: ReadonlyMap<Node, Selection>, hooks?: ReplayHooks): { b: GraphBuilder; map: Map<Value, Value> } {
  const b = new GraphBuilder(m.opset);
  const map = new Map<Value, Value>();
  for (const v of m.graph.inputs) map.set(v, b.input(v.name, v.type));
  const get = (v: Value | null): Value | null => (v ? (map.get(v) ?? v) : null);
  for (const n of m.graph.nodes) {
    const sel = sels.get(n);
    if (sel) {
      const k = rows(sel);
      map.set(n.outputs[0]!, b.constant(Tensor.from('i64', [1, k], Array.from({ length: k }, (_, i) => i)), n.outputs[0]!.name));
      continue;
    }
    const replaced = hooks?.node(n, b, get);
    if (replaced) {
      n.outputs.forEach((o, i) => map.set(o, replaced[i]!));
      continue;
    }
    if (hasSubgraphs(n)) {
      // Control flow (a pooler's If, say) is copied with its reads of enclosing values remapped;
      // its own types stay as they were, so it must not touch selected tokens.
      const copy = editNode(n, { subst: map });
      b.addNode(copy);
      n.outputs.forEach((o) => map.set(o, o));
      continue;
    }
    const ins = n.inputs.map(get);
    const outs = b.add(n.op, ins, n.attrs, { name: n.name, numOutputs: n.outputs.length, outputNames: n.outputs.map((o) => o.name) });
    n.outputs.forEach((o, i) => map.set(o, outs[i]!));
  }
  return { b, map };
}

interface ReplayHooks {
  node(n: Node, b: GraphBuilder, get: (v: Value | null) => Value | null): Value[] | undefined;
}

/** Finds NonZero nodes whose count is symbolic (selections); refuses the forms it cannot rewrite. */
function findSelections(m: Module): Map<Node, Selection> {
  const out = new Map<Node, Selection>();
  for (const n of m.graph.nodes) {
    if (n.op !== 'NonZero') continue;
    const count = n.outputs[0]!.shape[1];
    if (typeof count !== 'string') continue;
    const x = n.inputs[0]!;
    if (x.shape.length !== 1 || typeof x.shape[0] !== 'number') fail(`selects from a ${x.shape.length}-D mask ${JSON.stringify(x.shape)}; only a 1-D mask of static length (one sample's token mask) is rewritten`, n);
    out.set(n, { node: n, length: x.shape[0] });
  }
  return out;
}

function rank(v: Value): number {
  return v.shape.length;
}

type Probe = { readonly b: GraphBuilder; readonly map: Map<Value, Value> };

export function maskTokenSelection(m: Module): Module {
  const sels = findSelections(m);
  if (sels.size === 0) return m;
  const g = m.graph;
  const producer = new Map<Value, Node>();
  const users = new Map<Value, Node[]>();
  for (const n of g.nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const v of n.inputs) if (v) (users.get(v) ?? users.set(v, []).get(v)!).push(n);
  }
  const outputs = new Set(g.outputs);
  // Two replays: every selection answering all T rows, and T-1 rows. An axis whose size differs
  // between them carries selected tokens (a "tracked" axis).
  const full = replay(m, (s) => s.length, sels);
  const less = replay(m, (s) => Math.max(1, s.length - 1), sels);
  const shapeIn = (p: Probe, v: Value): readonly Dim[] => (p.map.get(v) ?? v).shape;
  const trackedAxes = (v: Value): number[] => {
    const a = shapeIn(full, v);
    const c = shapeIn(less, v);
    const out: number[] = [];
    for (let i = 0; i < a.length; i++) if (a[i] !== c[i]) out.push(i);
    return out;
  };
  const sizeKey = (v: Value, a: number): string => `${String(shapeIn(full, v)[a])}/${String(shapeIn(less, v)[a])}`;

  const indexOf = new Map<Value, Selection>();
  for (const s of sels.values()) indexOf.set(s.node.outputs[0]!, s);
  // Layout of each tracked axis of each value (original values).
  const layouts = new Map<Value, Map<number, Segment[]>>();
  const selId = new Map([...sels.keys()].map((n, i) => [n, i] as const));
  const segKey = (x: Segment): string => (x.kind === 'ones' ? `1x${x.n}` : `m${selId.get(x.sel)!}x${x.n}`);
  const sameLayout = (a: Segment[], b: Segment[]): boolean => a.map(segKey).join() === b.map(segKey).join();
  const setLayout = (v: Value, a: number, segs: Segment[]): void => {
    (layouts.get(v) ?? layouts.set(v, new Map()).get(v)!).set(a, segs);
  };
  const layoutOf = (v: Value, a: number, n: Node): Segment[] => {
    const l = layouts.get(v)?.get(a);
    if (l) return l;
    if (!trackedAxes(v).includes(a)) {
      const d = shapeIn(full, v)[a];
      if (typeof d !== 'number') fail(`axis ${a} of '${v.name}' has no static size`, n);
      return [{ kind: 'ones', n: d }];
    }
    return fail(`cannot tell which rows of axis ${a} of '${v.name || '?'}' are valid tokens`, n);
  };
  const maskedSoftmax = new Set<Node>();
  const maskedAttention = new Map<Node, number>(); // ONNX Attention -> its key axis
  const zeroOperand = new Set<Node>(); // MatMul whose first operand needs zeros at invalid keys
  const exits = new Map<Node, { axis: number; selections: number }>(); // exit Pad -> its token axis
  /** Each tracked output axis inherits the layout of an input axis with the same sizes in both replays. */
  const inherit = (n: Node): void => {
    for (const o of n.outputs) {
      for (const a of trackedAxes(o)) {
        if (layouts.get(o)?.has(a)) continue;
        const key = sizeKey(o, a);
        let found: Segment[] | undefined;
        for (const v of n.inputs) {
          if (!v) continue;
          for (const b of trackedAxes(v)) {
            if (sizeKey(v, b) !== key) continue;
            const l = layoutOf(v, b, n);
            if (found && !sameLayout(found, l)) fail('mixes tokens of two different layouts', n);
            found = l;
          }
        }
        if (!found) fail(`its output axis ${a} changes with the number of valid tokens in a way that is not a row of a selected token (e.g. a merge of the token axis with another)`, n);
        setLayout(o, a, found);
      }
    }
  };

  for (const n of g.nodes) {
    if (sels.has(n)) continue;
    const idxIn = n.inputs.findIndex((v) => v && indexOf.has(v));
    if (idxIn >= 0) {
      const s = indexOf.get(n.inputs[idxIn]!)!;
      if (['Transpose', 'Reshape', 'Squeeze', 'Unsqueeze', 'Flatten', 'Cast'].includes(n.op) && idxIn === 0) {
        indexOf.set(n.outputs[0]!, s);
        continue;
      }
      if (n.op === 'Shape' || n.op === 'Size') continue;
      if ((n.op === 'Gather' || n.op === 'GatherND') && idxIn === 1 && !indexOf.has(n.inputs[0]!)) {
        const o = n.outputs[0]!;
        const axes = trackedAxes(o);
        const data = n.inputs[0]!;
        if (axes.length !== 1 || trackedAxes(data).length > 0) fail(`gathers selected tokens into an unexpected shape [${shapeIn(full, o).join(',')}]`, n);
        const a = axes[0]!;
        if (shapeIn(full, data).join() !== shapeIn(full, o).join() || shapeIn(full, o)[a] !== s.length) {
          fail(`selects along an axis of length ${String(shapeIn(full, data)[a])}, but the mask has ${s.length} tokens`, n);
        }
        setLayout(o, a, [{ kind: 'mask', sel: s.node, n: s.length }]);
        continue;
      }
      fail(`the selected token indices of NonZero '${s.node.name}' feed ${n.op} input ${idxIn}; only a gather of rows (then attention and a pad back) is rewritten`, n);
    }
    if (!n.inputs.some((v) => v && trackedAxes(v).length > 0)) continue;
    const out0 = n.outputs[0]!;
    const r0 = shapeIn(full, out0).length;
    switch (n.op) {
      case 'Shape':
      case 'Size':
        continue;
      case 'Concat': {
        const axis = normAxis(n.attrs['axis']?.kind === 'int' ? n.attrs['axis'].value : 0, r0);
        if (trackedAxes(out0).includes(axis)) setLayout(out0, axis, n.inputs.flatMap((v) => layoutOf(v!, axis, n)));
        break;
      }
      case 'Softmax':
      case 'LogSoftmax': {
        const axis = normAxis(n.attrs['axis']?.kind === 'int' ? n.attrs['axis'].value : -1, r0);
        if (trackedAxes(n.inputs[0]!).includes(axis)) {
          layoutOf(n.inputs[0]!, axis, n);
          maskedSoftmax.add(n);
        }
        break;
      }
      case 'MatMul': {
        const a = n.inputs[0]!;
        const ra = shapeIn(full, a).length;
        if (ra < 2 || shapeIn(full, n.inputs[1]!).length < 2) fail('a MatMul with a 1-D operand over selected tokens is not supported', n);
        if (trackedAxes(a).includes(ra - 1)) {
          layoutOf(a, ra - 1, n);
          const p = producer.get(a);
          const viaCast = p && p.op === 'Cast' ? producer.get(p.inputs[0]!) : undefined;
          if (!(p && maskedSoftmax.has(p)) && !(viaCast && maskedSoftmax.has(viaCast))) zeroOperand.add(n);
          // The contraction's output axes: rows of A (all but the last axis) and columns of B.
          for (const ax of trackedAxes(out0)) {
            if (ax === r0 - 1) {
              const bt = n.inputs[1]!;
              setLayout(out0, ax, layoutOf(bt, shapeIn(full, bt).length - 1, n));
            } else setLayout(out0, ax, layoutOf(a, ax - (r0 - ra), n));
          }
        }
        break;
      }
      case 'Attention': {
        // ONNX Attention (opset 23): keys on axis 2 of a 4-D K, axis 1 of a 3-D one.
        const k = n.inputs[1]!;
        const ax = shapeIn(full, k).length === 4 ? 2 : 1;
        if (n.outputs.length > 1 && n.outputs.slice(1).some((o) => users.get(o)?.length)) fail('uses the present key/value or scores outputs of attention over selected tokens', n);
        if (n.inputs.length > 4 && n.inputs.slice(4).some((v) => v)) fail('attention over selected tokens with a key/value cache is not supported', n);
        if (trackedAxes(k).includes(ax)) {
          layoutOf(k, ax, n);
          maskedAttention.set(n, ax);
        }
        break;
      }
      case 'Pad': {
        const ins = trackedAxes(n.inputs[0]!);
        if (trackedAxes(out0).length === 0) {
          if (ins.length !== 1) fail(`pads ${ins.length} axes of selected tokens at once; expected one`, n);
          const l = layoutOf(n.inputs[0]!, ins[0]!, n);
          exits.set(n, { axis: ins[0]!, selections: l.filter((x) => x.kind === 'mask').length });
          continue;
        }
        fail('pads selected tokens without restoring a fixed length', n);
        break;
      }
      case 'LayerNormalization':
      case 'RMSNormalization': {
        const axis = normAxis(n.attrs['axis']?.kind === 'int' ? n.attrs['axis'].value : -1, r0);
        if (trackedAxes(n.inputs[0]!).some((a) => a >= axis)) fail('normalizes across selected tokens', n);
        break;
      }
      case 'Slice':
      case 'Split':
      case 'Gather':
        // Off the token axis only: the token axis must keep its size (checked by inherit below).
        for (const o of n.outputs) if (trackedAxes(o).length !== trackedAxes(n.inputs[0]!).length) fail('slices or gathers along the axis of selected tokens', n);
        break;
      default:
        if (!ROWWISE.has(n.op)) fail(`cannot rewrite ${n.op} on selected tokens (only row-wise ops, attention and a pad back to full length are)`, n);
    }
    inherit(n);
    for (const o of n.outputs) if (outputs.has(o) && trackedAxes(o).length > 0) fail('a model output still has the data-dependent token count', n);
  }

  checkCountDependence(m, sels, exits, users, producer, indexOf, full, less);

  // The rewrite: selections answer every row; gathers by them are identities; masks and compactions.
  const validCache = new Map<string, Value>();
  const validity = (b: GraphBuilder, segs: Segment[], get: (v: Value | null) => Value | null): Value => {
    const key = segs.map(segKey).join(',');
    const hit = validCache.get(key);
    if (hit) return hit;
    const parts = segs.map((x) => {
      if (x.kind === 'ones') return b.constant(Tensor.from('bool', [x.n], new Array<number>(x.n).fill(1)));
      const k = segKey(x);
      const v = validCache.get(k) ?? b.add('Cast', [get(x.sel.inputs[0]!)], { to: { kind: 'int', value: 9 } })[0]!;
      validCache.set(k, v);
      return v;
    });
    const v = parts.length === 1 ? parts[0]! : b.add('Concat', parts, { axis: { kind: 'int', value: 0 } })[0]!;
    validCache.set(key, v);
    return v;
  };
  /** The [L] vector v shaped to broadcast along axis `axis` of a rank-r tensor. */
  const along = (b: GraphBuilder, v: Value, axis: number, r: number): Value => {
    const trailing = r - 1 - axis;
    if (trailing === 0) return v;
    return b.add('Reshape', [v, b.constant(Tensor.from('i64', [1 + trailing], [-1, ...new Array<number>(trailing).fill(1)]))])[0]!;
  };
  const { b, map } = replay(m, (x) => x.length, sels, {
    node(n, b, get) {
      if ((n.op === 'Gather' || n.op === 'GatherND') && n.inputs[1] && indexOf.has(n.inputs[1])) return [get(n.inputs[0]!)!];
      if (maskedSoftmax.has(n)) {
        const x = get(n.inputs[0]!)!;
        const axis = normAxis(n.attrs['axis']?.kind === 'int' ? n.attrs['axis'].value : -1, rank(x));
        const w = along(b, validity(b, layoutOf(n.inputs[0]!, axis, n), get), axis, rank(x));
        const sc = b.add('Where', [w, x, b.constant(Tensor.scalar(x.dtype, -Infinity))])[0]!;
        return b.add(n.op, [sc], n.attrs, { name: n.name });
      }
      const keyAxis = maskedAttention.get(n);
      if (keyAxis !== undefined) {
        const q = get(n.inputs[0]!)!;
        const w = validity(b, layoutOf(n.inputs[1]!, keyAxis, n), get);
        const L = w.shape[0] as number;
        let mask = b.add('Reshape', [w, b.constant(Tensor.from('i64', [4], [1, 1, 1, L]))])[0]!;
        const old = n.inputs[3] ? get(n.inputs[3]) : null;
        if (old && old.dtype === 'bool') mask = b.add('And', [old, mask])[0]!;
        else if (old) mask = b.add('Add', [old, b.add('Where', [mask, b.constant(Tensor.scalar(q.dtype, 0)), b.constant(Tensor.scalar(q.dtype, -Infinity))])[0]!])[0]!;
        const ins = [q, get(n.inputs[1]!), get(n.inputs[2]!), mask];
        return b.add('Attention', ins, n.attrs, { name: n.name, numOutputs: n.outputs.length });
      }
      if (zeroOperand.has(n)) {
        const a = get(n.inputs[0]!)!;
        const w = validity(b, layoutOf(n.inputs[0]!, rank(a) - 1, n), get);
        const z = b.add('Where', [w, a, b.constant(Tensor.scalar(a.dtype, 0))])[0]!;
        return b.add('MatMul', [z, get(n.inputs[1]!)], n.attrs, { name: n.name });
      }
      const exit = exits.get(n);
      if (exit) {
        const x = get(n.inputs[0]!)!;
        return [compact(b, x, exit.axis, layoutOf(n.inputs[0]!, exit.axis, n), (segs) => validity(b, segs, get), n)];
      }
      return undefined;
    },
  });
  const outs = g.outputs.map((v) => map.get(v) ?? v);
  g.outputs.forEach((o, i) => {
    const v = outs[i]!;
    if (o.dtype !== v.dtype || (isStaticShape(o.shape) && o.shape.join() !== v.shape.join())) fail(`output '${o.name}' changed type in the rewrite (${o.dtype}[${o.shape.join(',')}] -> ${v.dtype}[${v.shape.join(',')}])`);
  });
  // The index chains and the pads arithmetic are dead now.
  const built = b.build(outs, g.name);
  return m.withGraph(applyDcePlan(built, planDeadCode(built)));
}

function normAxis(a: number, r: number): number {
  return a < 0 ? a + r : a;
}

function reduceAxes(n: Node, r: number, opset: number, producer: ReadonlyMap<Value, Node>): number[] | undefined {
  const attr = n.attrs['axes'];
  if (attr?.kind === 'ints') return attr.value.map((a) => normAxis(a, r));
  const inp = n.inputs[1];
  if (!inp) return n.attrs['noop_with_empty_axes']?.kind === 'int' && n.attrs['noop_with_empty_axes'].value === 1 ? [] : Array.from({ length: r }, (_, i) => i);
  const c = inp.constant?.tensor() ?? constantOf(producer.get(inp), opset);
  return c ? Array.from(c.data, (a) => normAxis(a, r)) : undefined;
}

/**
 * Row j of the result is the row of the j-th valid token along `axis` (zeros past the count):
 * the inverse of "select valid rows, pad with zeros at the end".
 */
function compact(b: GraphBuilder, x: Value, axis: number, segs: Segment[], validity: (s: Segment[]) => Value, at: Node): Value {
  if (!isStaticShape(x.shape)) fail(`the result of attention over selected tokens still has a symbolic shape ${JSON.stringify(x.shape)}`, at);
  const r = x.shape.length;
  const i64 = (vals: number[], shape = [vals.length]): Value => b.constant(Tensor.from('i64', shape, vals));
  const int = (value: number) => ({ kind: 'int' as const, value });
  const slice = (from: number, to: number): Value => b.add('Slice', [x, i64([from]), i64([to]), i64([axis])])[0]!;
  // [ones(S); rest]: the S always-valid rows stay where they are; only the rest is compacted.
  const lead = segs[0]?.kind === 'ones' && segs.length > 1 ? segs[0].n : 0;
  const rest = segs.slice(lead > 0 ? 1 : 0);
  const L = x.shape[axis]!;
  const tail = lead > 0 ? slice(lead, L) : x;
  const n = L - lead;
  const w = b.add('Cast', [validity(rest)], { to: int(7) })[0]!; // i64 [n]
  const c = b.add('CumSum', [w, i64([0], [])])[0]!; // inclusive count of valid rows up to i
  const j = i64(Array.from({ length: n }, (_, k) => k), [n, 1]);
  const le = b.add('LessOrEqual', [b.add('Unsqueeze', [c, i64([0])])[0]!, j])[0]!; // [n, n]: c_i <= j
  const idx = b.add('ReduceSum', [b.add('Cast', [le], { to: int(7) })[0]!, i64([1])], { keepdims: int(0) })[0]!; // position of the j-th valid row
  const safe = b.add('Min', [idx, i64([n - 1], [])])[0]!;
  const gathered = b.add('Gather', [tail, safe], { axis: int(axis) })[0]!;
  const total = b.add('ReduceSum', [w, i64([0])], { keepdims: int(0) })[0]!;
  const keep = b.add('Less', [i64(Array.from({ length: n }, (_, k) => k)), total])[0]!;
  const trailing = r - 1 - axis;
  const keepB = trailing === 0 ? keep : b.add('Reshape', [keep, i64([-1, ...new Array<number>(trailing).fill(1)])])[0]!;
  const compacted = b.add('Where', [keepB, gathered, b.constant(Tensor.scalar(x.dtype, 0))])[0]!;
  return lead > 0 ? b.add('Concat', [slice(0, lead), compacted], { axis: int(axis) })[0]! : compacted;
}

/**
 * Replays with T and T-1 rows per selection: a value that differs depends on the count. Such
 * values may only feed shapes and the exit pads; the exit pads must be zero at T rows and grow
 * by one at the end of the token axis per missing row.
 */
function checkCountDependence(
  m: Module,
  sels: ReadonlyMap<Node, Selection>,
  exits: ReadonlyMap<Node, { axis: number; selections: number }>,
  users: ReadonlyMap<Value, Node[]>,
  producer: ReadonlyMap<Value, Node>,
  indexOf: ReadonlyMap<Value, Selection>,
  full: Probe,
  less: Probe,
): void {
  const known = (r: Probe, v: Value): Tensor | undefined => {
    const nv = r.map.get(v) ?? v;
    return isStaticShape(nv.shape) && nv.shape.reduce((a, d) => a * d, 1) <= SMALL ? r.b.valueOf(nv) : undefined;
  };
  const dependent = (v: Value): boolean => {
    const a = known(full, v);
    const c = known(less, v);
    if (!a || !c) return false;
    return a.size !== c.size || Array.from(a.data).some((x, i) => x !== c.data[i]);
  };
  for (const n of m.graph.nodes) {
    if (sels.has(n)) continue;
    for (const o of n.outputs) {
      if (o.dtype !== 'i64' && o.dtype !== 'i32' && o.dtype !== 'f32' && o.dtype !== 'f64') continue;
      if (indexOf.has(o) || producer.get(o)?.op === 'NonZero' || !dependent(o)) continue;
      for (const u of users.get(o) ?? []) {
        const positions = u.inputs.flatMap((v, i) => (v === o ? [i] : []));
        if (exits.has(u) && positions.every((i) => i === 1)) continue;
        const shapeIns = SHAPE_INPUTS[u.op] ?? [];
        if (positions.every((i) => shapeIns.includes(i))) continue;
        // Shape arithmetic: small outputs, and every other operand known at compile time (not data).
        if (SHAPE_MATH.has(u.op) && u.outputs.every((x) => isSmall(x)) && u.inputs.every((v) => !v || known(full, v) !== undefined)) continue;
        if (u.op === 'Gather' || u.op === 'GatherND' || u.op === 'Pad') {
          if (positions.every((i) => i >= 1)) continue;
        }
        fail(`uses the number of valid tokens (through '${o.name}') as data; only shapes may depend on it`, u);
      }
    }
  }
  for (const [p, { axis, selections }] of exits) {
    const a = known(full, p.inputs[1]!);
    const c = known(less, p.inputs[1]!);
    if (!a || !c) fail('its pads could not be computed from shapes', p);
    const r = p.inputs[0]!.shape.length;
    const rowsMissing = selections;
    const okFull = Array.from(a.data).every((x) => x === 0);
    const okLess = Array.from(c.data).every((x, i) => x === (i === r + axis ? rowsMissing : 0));
    if (!okFull || !okLess) fail(`pads [${Array.from(c.data).join(',')}] for one missing token; expected zeros except at the end of axis ${axis} (the valid tokens first, then zeros)`, p);
    const mode = p.attrs['mode'];
    if (mode && mode.kind === 'string' && mode.value !== 'constant') fail(`pads in mode ${mode.value}; expected constant zeros`, p);
    if (p.inputs[2] && known(full, p.inputs[2])?.data[0] !== 0) fail('pads with a nonzero value', p);
  }
}

/** The tensor of a Constant node (reduce axes exported as a node rather than an initializer). */
function constantOf(n: Node | undefined, _opset: number): Tensor | undefined {
  const a = n?.op === 'Constant' ? n.attrs['value'] : undefined;
  return a?.kind === 'tensor' ? a.value : undefined;
}

function isSmall(v: Value): boolean {
  return isStaticShape(v.shape) && v.shape.reduce((a, d) => a * d, 1) <= SMALL;
}

export const maskTokenSelectionPass: Pass = {
  name: PASS,
  description: 'data-dependent token selection around attention -> fixed-size attention with a key-padding mask',
  run(m) {
    return maskTokenSelection(m);
  },
};
