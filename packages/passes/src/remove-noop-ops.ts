/**
 * remove-noop-ops: replaces ops that return their input unchanged by that input.
 *
 * Requires: nothing (static shapes let more ops be recognized as no-ops; run fold-constants first
 *           so shape operands are constants).
 * Ensures:  no CastLike to another dtype (a Cast instead), no Identity (but one that names a graph output), no Cast/CastLike to the input's own dtype, no Reshape/Squeeze/Unsqueeze/
 *           Flatten/Expand to the input's own shape, no identity Transpose, no inference-time
 *           Dropout, no pair of views that cancel, no one-piece Concat/Split/Sum/Max/Min/Mean,
 *           no whole-tensor Slice, zero Pad, unit Tile, and no x+0, x-0, x*1, x/1 (by a splat
 *           constant that does not broadcast x). Outputs keep their types; data is bit-identical
 *           except that -0 + 0 gives +0 in the source and -0 here.
 *
 *     before:  %one = const f32[] [1]
 *              %1 = Cast(%x) {to=1} : f32[2,3]
 *              %2 = Transpose(%1) {perm=[0, 1]} : f32[2,3]
 *              %3 = Mul(%2, %one) : f32[2,3]
 *              return %3
 *     after:   return %x
 */
import { dtypeToOnnx } from '@paradit/ir';
import type { Node, Value } from '@paradit/ir';
import { GraphView, RewriteRule, isView, replaceWith, rewriteTo, sameShape } from './rewrite';
import { rewritePass } from './rewriter';

/** replaceWith(x) when x has exactly the type of n's single output; else no match. */
function forward(n: Node, x: Value | null | undefined): ReturnType<RewriteRule> {
  if (!x || n.outputs.length !== 1) return undefined;
  const o = n.outputs[0]!;
  return x.dtype === o.dtype && sameShape(x.shape, o.shape) ? replaceWith(x) : undefined;
}

// Identity(x) -> x, unless the Identity names a graph output that x would lose (runtimes find
// outputs such as fbcache.diff by name)
const identity: RewriteRule = (n, view) => {
  if (n.op !== 'Identity') return undefined;
  const o = n.outputs[0];
  const x = n.inputs[0];
  if (o && x && o.name && x.name !== o.name && view.isGraphOutput(o)) return undefined;
  return forward(n, x);
};

// Cast(x: T) {to: T} -> x;  CastLike(x: T, like: T) -> x
const castToSameType: RewriteRule = (n) => (n.op === 'Cast' || n.op === 'CastLike' ? forward(n, n.inputs[0]) : undefined);

// Reshape|Squeeze|Unsqueeze|Flatten(x) with shape(out) == shape(x) -> x
const viewToSameShape: RewriteRule = (n) => (isView(n) ? forward(n, n.inputs[0]) : undefined);

// Expand(x, s) with shape(out) == shape(x) -> x
const expandToSameShape: RewriteRule = (n) => (n.op === 'Expand' ? forward(n, n.inputs[0]) : undefined);

// Transpose(x) {perm: [0, 1, ..., r-1]} -> x
const identityTranspose: RewriteRule = (n) => {
  if (n.op !== 'Transpose') return undefined;
  const x = n.inputs[0];
  if (!x) return undefined;
  const a = n.attrs['perm'];
  const perm = a && a.kind === 'ints' ? a.value : [...x.shape.keys()].reverse();
  return perm.every((p, i) => p === i) ? forward(n, x) : undefined;
};

// Dropout(x) at inference (training_mode absent or false, mask unused) -> x
const inferenceDropout: RewriteRule = (n, view) => {
  if (n.op !== 'Dropout') return undefined;
  const training = n.inputs[2];
  if (training && view.splat(training) !== 0) return undefined;
  const mask = n.outputs[1];
  if (mask && (view.users(mask).length > 0 || view.isGraphOutput(mask))) return undefined;
  const x = n.inputs[0];
  if (!x || x.dtype !== n.outputs[0]!.dtype || !sameShape(x.shape, n.outputs[0]!.shape)) return undefined;
  return mask ? replaceWith(x, mask) : replaceWith(x);
};

// View(View(x)) with shape(out) == shape(x) -> x   (e.g. Unsqueeze(Squeeze(x, 1), 1))
const cancelingViews: RewriteRule = (n, view) => {
  if (!isView(n)) return undefined;
  const inner = view.producer(n.inputs[0]);
  return isView(inner) ? forward(n, inner.inputs[0]) : undefined;
};

// Concat(x) -> x;  Sum(x) -> x;  Max(x) -> x;  Min(x) -> x;  Mean(x) -> x
const singleOperand: RewriteRule = (n) => {
  if (n.op !== 'Concat' && n.op !== 'Sum' && n.op !== 'Max' && n.op !== 'Min' && n.op !== 'Mean') return undefined;
  return n.inputs.length === 1 ? forward(n, n.inputs[0]) : undefined;
};

// Split(x) into one piece -> x
const singlePieceSplit: RewriteRule = (n) => (n.op === 'Split' && n.outputs.length === 1 ? forward(n, n.inputs[0]) : undefined);

// Slice(x) covering every element in order (shape(out) == shape(x), no reversed axis) -> x
const wholeSlice: RewriteRule = (n, view) => {
  if (n.op !== 'Slice') return undefined;
  const x = n.inputs[0];
  if (!x || !x.shape.every((d) => typeof d === 'number')) return undefined;
  const steps = sliceOperand(n, view, 4, 'steps');
  const axes = sliceOperand(n, view, 3, 'axes');
  if (steps === null || axes === null) return undefined;
  if (steps) {
    const rank = x.shape.length;
    for (let i = 0; i < steps.length; i++) {
      const ax = axes ? axes[i]! : i;
      const dim = x.shape[ax < 0 ? ax + rank : ax];
      if (steps[i]! < 0 && dim !== 1) return undefined; // a full-length reversed axis is not a no-op
    }
  }
  return forward(n, x);
};

/** A Slice operand from input i (opset 10+) or the attribute (older); undefined if absent, null if unknown. */
function sliceOperand(n: Node, view: GraphView, i: number, attr: string): readonly number[] | undefined | null {
  const v = n.inputs[i];
  if (v) return view.ints(v) ?? null;
  const a = n.attrs[attr];
  return a && a.kind === 'ints' ? a.value : undefined;
}

// Pad(x) {pads all 0} -> x
const zeroPad: RewriteRule = (n, view) => {
  if (n.op !== 'Pad') return undefined;
  const a = n.attrs['pads'];
  const pads = n.inputs[1] ? view.ints(n.inputs[1]) : a && a.kind === 'ints' ? a.value : undefined;
  return pads && pads.every((p) => p === 0) ? forward(n, n.inputs[0]) : undefined;
};

// Tile(x, repeats all 1) -> x
const unitTile: RewriteRule = (n, view) => {
  if (n.op !== 'Tile') return undefined;
  const reps = view.ints(n.inputs[1]);
  return reps && reps.every((r) => r === 1) ? forward(n, n.inputs[0]) : undefined;
};

// Add(x, 0) -> x;  Add(0, x) -> x;  Sub(x, 0) -> x   (0: a splat constant not broadcasting x)
const addZero: RewriteRule = (n, view) => {
  if (n.op !== 'Add' && n.op !== 'Sub') return undefined;
  const [a, b] = n.inputs;
  if (view.splat(b) === 0) return forward(n, a);
  if (n.op === 'Add' && view.splat(a) === 0) return forward(n, b);
  return undefined;
};

// Mul(x, 1) -> x;  Mul(1, x) -> x;  Div(x, 1) -> x   (1: a splat constant not broadcasting x)
const mulOne: RewriteRule = (n, view) => {
  if (n.op !== 'Mul' && n.op !== 'Div') return undefined;
  const [a, b] = n.inputs;
  if (view.splat(b) === 1) return forward(n, a);
  if (n.op === 'Mul' && view.splat(a) === 1) return forward(n, b);
  return undefined;
};

// CastLike(x, like: T) -> Cast(x) {to: T}: only like's dtype matters, and a Cast of a constant
// folds (unoptimized dynamo exports compute attention scales as CastLike(const, q))
const castLikeToCast: RewriteRule = (n) => {
  if (n.op !== 'CastLike' || !n.inputs[0] || !n.inputs[1] || n.inputs[0].dtype === n.inputs[1].dtype) return undefined;
  const to = dtypeToOnnx(n.inputs[1].dtype);
  return rewriteTo((b) => b.op('Cast', [n.inputs[0]!], { to: { kind: 'int', value: to } }));
};

const REMOVE_NOOP_RULES: readonly RewriteRule[] = [
  identity,
  castToSameType,
  castLikeToCast,
  viewToSameShape,
  expandToSameShape,
  identityTranspose,
  inferenceDropout,
  cancelingViews,
  singleOperand,
  singlePieceSplit,
  wholeSlice,
  zeroPad,
  unitTile,
  addZero,
  mulOne,
];

export const removeNoopOps = rewritePass('remove-noop-ops', 'replaces ops that return their input unchanged by that input', REMOVE_NOOP_RULES);
