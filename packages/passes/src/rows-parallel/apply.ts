/**
 * shard-rows: the per-rank graph of a convolutional decoder whose image rows are split in W bands
 * (docs/vae.md). A prototype over the ops of a VAE decoder after the default pipeline (Conv,
 * Resize nearest, GroupNorm as Reshape/InstanceNormalization, the mid-block attention, linear,
 * Transpose, elementwise ops); any other op on a split value is refused, naming the node.
 *
 *   Before: %y = Conv(%x, %w, %b) {pads=[1,1,1,1]}              # x f32[1,C,H,W]
 *   After:  %x0 = shard_slice(%z) ...                           # x f32[1,C,H/W,W] per rank
 *           %up = ppermute(last row of %x0) {shift=1, cyclic=0}   # zeros on rank 0
 *           %dn = ppermute(first row of %x0) {shift=-1, cyclic=0} # zeros on rank W-1
 *           %y0 = Conv(Concat(%up, %x0, %dn, axis=2), %w, %b) {pads=[0,1,0,1]}
 *
 * Requires: static shapes; halo-plan.ts accepts the module at this degree (it is run first).
 * Ensures: every value placed (placements.ts; verify accepts the module); graph inputs of
 * rank 4 are split on axis 2 (shard_slice), outputs gathered
 * (all_gather), so the outputs equal the unsharded module's within fp32 rounding of GroupNorm's
 * all-reduced statistics (convs, resizes and elementwise ops are bitwise the same).
 */
import { GraphBuilder, IrError, Module, Tensor } from '@paradit/ir';
import type { AttrValue, Attrs, Dist, Node, Value } from '@paradit/ir';
import { planRowsParallel } from './halo-plan';
import { placeByRules } from './placements';

/** Rows of a value: the sub-axis of `axis` with inner stride `inner` (1 for NCHW axis 2), H rows. */
interface Rows {
  readonly axis: number;
  readonly inner: number;
  readonly H: number;
}

interface Local {
  readonly v: Value;
  readonly rows?: Rows;
  /**
   * The rows are a middle factor of `rows.axis` (GroupNorm's [B, G, C/G*h*W]): the local value
   * keeps them as an axis of their own ([B, G, C/G, h/W, W]) so that its split is a placement.
   */
  readonly refined?: boolean;
}

const int = (value: number): AttrValue => ({ kind: 'int', value });
const ints = (value: number[]): AttrValue => ({ kind: 'ints', value });
const str = (value: string): AttrValue => ({ kind: 'string', value });
const ELEMENTWISE = new Set(['Add', 'Sub', 'Mul', 'Div', 'Sigmoid', 'silu', 'Cast', 'Identity', 'gelu', 'Tanh', 'Relu', 'Neg']);

function fail(n: Node, msg: string): never {
  throw new IrError('E_INPUT', `rows-parallel: ${n.label}: ${msg}`, n.name);
}

function shapeOf(v: Value): number[] {
  return v.type.shape.map((d) => (typeof d === 'number' ? d : NaN));
}

function i64(values: number[]): Tensor {
  return Tensor.from('i64', [values.length], values);
}

class RowsBuilder {
  readonly b: GraphBuilder;
  private readonly env = new Map<Value, Local>();
  /** Reshape outputs whose split axis the rewrite states (a rule reading per-rank shapes cannot tell). */
  readonly placed = new Map<Value, Dist>();
  constructor(
    opset: number,
    readonly world: number,
    readonly meshAxis: string,
  ) {
    this.b = new GraphBuilder(opset);
  }

  /** `v` (a Reshape output) has its rows split on `axis`. */
  place(v: Value, axis: number): Value {
    this.placed.set(v, { shards: [{ axis, meshAxis: this.meshAxis }] });
    return v;
  }

  group(extra: Attrs = {}): Attrs {
    return { meshAxis: str(this.meshAxis), groupSize: int(this.world), ...extra };
  }

  get(v: Value | null): Local | undefined {
    if (!v) return undefined;
    return this.env.get(v) ?? { v }; // constants and initializers are shared, whole
  }

  set(v: Value, l: Local): void {
    this.env.set(v, l);
  }

  /**
   * `x` (local [B, C, h, W], rows split) with `top` rows from the rank above and `bottom` from the
   * rank below (zeros at the image edges). Each piece is cut as "rows [a, a+n) of every band":
   * Reshape to [B, C, 1, h, W] (globally [B, C, ranks, h, W]), Slice the unsplit axis 3, Reshape
   * to [B, C, n, W], so every value keeps a placement the SPMD verifier checks.
   */
  halo(x: Value, top: number, bottom: number, name: string): Value {
    const [B, C, h, W] = shapeOf(x) as [number, number, number, number];
    const parts: Value[] = [];
    const rowsOfBand = (start: number, n: number, what: string): Value => {
      const bands = this.place(this.b.add('Reshape', [x, this.b.constant(i64([B, C, 1, h, W]))], {}, { name: `${name}/${what}_bands` })[0]!, 2);
      const [cut] = this.b.add('Slice', [bands, this.b.constant(i64([start])), this.b.constant(i64([start + n])), this.b.constant(i64([3]))], {}, { name: `${name}/${what}_rows` });
      return this.place(this.b.add('Reshape', [cut!, this.b.constant(i64([B, C, n, W]))], {}, { name: `${name}/${what}` })[0]!, 2);
    };
    // Non-cyclic ppermutes (cyclic=0): nothing crosses the image edge, and the edge rank's
    // missing side arrives as zeros, which is the unsharded conv's zero padding there.
    if (top > 0) {
      parts.push(this.b.add('ppermute', [rowsOfBand(h - top, top, 'last')], this.group({ shift: int(1), cyclic: int(0) }), { name: `${name}/from_above` })[0]!);
    }
    parts.push(x);
    if (bottom > 0) {
      parts.push(this.b.add('ppermute', [rowsOfBand(0, bottom, 'first')], this.group({ shift: int(-1), cyclic: int(0) }), { name: `${name}/from_below` })[0]!);
    }
    if (parts.length === 1) return x;
    return this.b.add('Concat', parts, { axis: int(2) }, { name: `${name}/halo` })[0]!;
  }
}

/** Where the rows of `r` land in a reshape from `inShape` to `outShape` (flat stride must fall inside one output axis). */
function reshapeRows(n: Node, r: Rows, inShape: number[], outShape: number[]): Rows {
  const after = (s: number[], a: number): number => s.slice(a + 1).reduce((p, d) => p * d, 1);
  const stride = r.inner * after(inShape, r.axis);
  for (let j = 0; j < outShape.length; j++) {
    const post = after(outShape, j);
    if (stride % post === 0 && (post * outShape[j]!) % (stride * r.H) === 0) return { axis: j, inner: stride / post, H: r.H };
  }
  return fail(n, `the image rows (flat stride ${stride}) do not fall inside one axis of the output shape [${outShape.join(', ')}]`);
}

/** The local shape of a global shape whose rows are `r`. */
function localShape(shape: number[], r: Rows, world: number): number[] {
  const s = [...shape];
  s[r.axis] = s[r.axis]! / world;
  return s;
}

function rule(rb: RowsBuilder, n: Node): void {
  const ins = n.inputs.map((v) => rb.get(v));
  const split = ins.map((l) => l?.rows);
  const x = ins[0];
  const r = split.find((s) => s !== undefined);
  const copy = (inputs: (Value | null)[], attrs: Attrs = n.attrs): Value[] => rb.b.add(n.op, inputs, attrs, { name: n.name, numOutputs: n.outputs.length });
  if (!r) {
    copy(ins.map((l) => l?.v ?? null)).forEach((v, i) => rb.set(n.outputs[i]!, { v }));
    return;
  }
  const out = (v: Value, rows: Rows | undefined): void => rb.set(n.outputs[0]!, rows ? { v, rows } : { v });
  const refinedAt = ins.findIndex((l) => l?.refined);
  if (refinedAt >= 0 && n.op !== 'Reshape' && n.op !== 'InstanceNormalization') {
    fail(n, `operand ${refinedAt} holds the image rows inside axis ${ins[refinedAt]!.rows!.axis} (a GroupNorm layout); only InstanceNormalization and Reshape may read it`);
  }
  switch (n.op) {
    case 'Conv': {
      if (split[0]?.axis !== 2 || split[0].inner !== 1 || split.slice(1).some((s) => s)) fail(n, 'expected rows on axis 2 of the input only');
      const pads = n.attrs.pads?.kind === 'ints' ? [...n.attrs.pads.value] : [0, 0, 0, 0];
      const k = n.attrs.kernel_shape?.kind === 'ints' ? n.attrs.kernel_shape.value[0]! : shapeOf(n.inputs[1]!)[2]!;
      const s = n.attrs.strides?.kind === 'ints' ? n.attrs.strides.value[0]! : 1;
      const d = n.attrs.dilations?.kind === 'ints' ? n.attrs.dilations.value[0]! : 1;
      const xh = rb.halo(x!.v, pads[0]!, Math.max(0, d * (k - 1) - pads[0]! - s + 1), n.name);
      const attrs: Attrs = { ...n.attrs, pads: ints([0, pads[1]!, 0, pads[3]!]) };
      out(copy([xh, ...ins.slice(1).map((l) => l?.v ?? null)], attrs)[0]!, { axis: 2, inner: 1, H: shapeOf(n.outputs[0]!)[2]! });
      return;
    }
    case 'Resize': {
      const outShape = shapeOf(n.outputs[0]!);
      const inputs = ins.map((l) => l?.v ?? null);
      if (inputs[3]) inputs[3] = rb.b.constant(i64(localShape(outShape, { axis: 2, inner: 1, H: outShape[2]! }, rb.world)));
      out(copy(inputs)[0]!, { axis: 2, inner: 1, H: outShape[2]! });
      return;
    }
    case 'Reshape': {
      const outShape = shapeOf(n.outputs[0]!);
      const rows = reshapeRows(n, r, shapeOf(n.inputs[0]!), outShape);
      const j = rows.axis;
      if (rows.inner * rows.H === outShape[j]) {
        out(rb.place(rb.b.add('Reshape', [x!.v, rb.b.constant(i64(localShape(outShape, rows, rb.world)))], {}, { name: n.name })[0]!, j), rows);
        return;
      }
      // The rows are a middle factor of axis j: [.., outer, H/W, inner, ..] locally.
      const refined = [...outShape.slice(0, j), outShape[j]! / (rows.H * rows.inner), rows.H / rb.world, rows.inner, ...outShape.slice(j + 1)];
      rb.set(n.outputs[0]!, { v: rb.place(rb.b.add('Reshape', [x!.v, rb.b.constant(i64(refined))], {}, { name: n.name })[0]!, j + 1), rows, refined: true });
      return;
    }
    case 'Transpose': {
      const perm = n.attrs.perm?.kind === 'ints' ? n.attrs.perm.value : [];
      out(copy([x!.v])[0]!, { ...r, axis: perm.indexOf(r.axis) });
      return;
    }
    case 'linear': {
      if (r.axis === shapeOf(n.inputs[0]!).length - 1 || split.slice(1).some((s) => s)) fail(n, 'the rows must not be on the contracted axis');
      out(copy(ins.map((l) => l?.v ?? null))[0]!, r);
      return;
    }
    case 'attention': {
      const gathered = [1, 2].map((i) => rb.b.add('all_gather', [ins[i]!.v], rb.group({ axis: int(2) }), { name: `${n.name}/gather_${i === 1 ? 'k' : 'v'}` })[0]!);
      out(copy([ins[0]!.v, ...gathered, ...ins.slice(3).map((l) => l?.v ?? null)])[0]!, split[0]);
      return;
    }
    case 'InstanceNormalization':
      rb.set(n.outputs[0]!, { v: groupNorm(rb, n, x!.v, ins[1]!.v, ins[2]!.v), rows: r, ...(x!.refined ? { refined: true } : {}) });
      return;
    default:
      if (!ELEMENTWISE.has(n.op)) fail(n, `this op has no rows-parallel rule (split image rows pass through Conv, nearest Resize, GroupNorm, attention, linear, Reshape, Transpose and ${[...ELEMENTWISE].join('/')}); decode without --rows-parallel`);
      ins.forEach((l, i) => {
        const shape = l ? shapeOf(l.v) : [];
        const aligned = r.axis - (shapeOf(n.outputs[0]!).length - shape.length);
        if (!l?.rows && aligned >= 0 && (shape[aligned] ?? 1) !== 1) fail(n, `operand ${i} varies along the split rows but is not split`);
      });
      out(copy(ins.map((l) => l?.v ?? null))[0]!, r);
  }
}

/**
 * InstanceNormalization of a local [B, G, L/W] or refined [B, G, C/G, h/W, W] (rows split) over
 * every axis from 2, with all-reduced fp32 statistics (two-pass).
 */
function groupNorm(rb: RowsBuilder, n: Node, x: Value, scale: Value, bias: Value): Value {
  const shape = shapeOf(x);
  const G = shape[1]!;
  const reduced = shape.slice(2).map((_, i) => i + 2);
  const count = shape.slice(2).reduce((p, d) => p * d, 1) * rb.world;
  const b = rb.b;
  const eps = n.attrs.epsilon?.kind === 'float' ? n.attrs.epsilon.value : 1e-5;
  const axes = b.constant(i64(reduced));
  const inv = b.constant(Tensor.from('f32', [], [1 / count]));
  const globalMean = (t: Value, what: string): Value => {
    const [s] = b.add('ReduceSum', [t, axes], { keepdims: int(1) }, { name: `${n.name}/${what}_local` });
    const [all] = b.add('all_reduce', [s!], rb.group({ reduce: str('sum') }), { name: `${n.name}/${what}_all_reduce` });
    return b.add('Mul', [all!, inv], {}, { name: `${n.name}/${what}` })[0]!;
  };
  const mean = globalMean(x, 'mean');
  const [centered] = b.add('Sub', [x, mean], {}, { name: `${n.name}/centered` });
  const [sq] = b.add('Mul', [centered!, centered!], {}, { name: `${n.name}/square` });
  const variance = globalMean(sq!, 'variance');
  const [ve] = b.add('Add', [variance, b.constant(Tensor.from('f32', [], [eps]))], {}, { name: `${n.name}/variance_eps` });
  const [sd] = b.add('Sqrt', [ve!], {}, { name: `${n.name}/std` });
  const [normed] = b.add('Div', [centered!, sd!], {}, { name: `${n.name}/normed` });
  const gShape = b.constant(i64([1, G, ...reduced.map(() => 1)]));
  const [g] = b.add('Reshape', [scale, gShape], {}, { name: `${n.name}/scale` });
  const [be] = b.add('Reshape', [bias, gShape], {}, { name: `${n.name}/bias` });
  const [scaled] = b.add('Mul', [normed!, g!], {}, { name: `${n.name}/scaled` });
  return b.add('Add', [scaled!, be!], {}, { name: n.name })[0]!;
}

/** The per-rank module of `m` with image rows split `world` ways over `meshAxis`. */
export function shardRows(m: Module, world: number, meshAxis = 'ring'): Module {
  planRowsParallel(m, world); // the refusals (rows not divisible, halos wider than a band)
  const rb = new RowsBuilder(m.opsets[''] ?? 18, world, meshAxis);
  for (const inp of m.graph.inputs) {
    const shape = shapeOf(inp);
    const v = rb.b.input(inp.name, inp.type);
    if (shape.length !== 4) {
      rb.set(inp, { v });
      continue;
    }
    const [s] = rb.b.add('shard_slice', [v], rb.group({ axis: int(2) }), { name: `${inp.name}/rows` });
    rb.set(inp, { v: s!, rows: { axis: 2, inner: 1, H: shape[2]! } });
  }
  for (const n of m.graph.nodes) rule(rb, n);
  const outs = m.graph.outputs.map((o) => {
    const l = rb.get(o)!;
    if (!l.rows) return l.v;
    if (l.rows.inner * l.rows.H !== shapeOf(o)[l.rows.axis]) throw new IrError('E_INPUT', `rows-parallel: output '${o.name}' holds its rows inside axis ${l.rows.axis}; cannot gather it`);
    return rb.b.add('all_gather', [l.v], rb.group({ axis: int(l.rows.axis) }), { name: `${o.name}/gather`, outputNames: [o.name] })[0]!;
  });
  return placeByRules(new Module(rb.b.build(outs, m.graph.name), m.opsets, m.meta), world, meshAxis, rb.placed);
}
