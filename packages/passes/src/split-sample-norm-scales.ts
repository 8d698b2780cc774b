/**
 * split-sample-norm-scales: a LayerNormalization or RMSNormalization whose scale or bias varies
 * per sample (it broadcasts over X's leading axes, as opset-23 exports of modulated norms write
 * it) becomes the norm with a unit scale and zero bias, followed by an elementwise Mul and Add:
 * the form every later pass knows (the norm fusion, the modulation fusion, the sharding rules, the
 * CUDA kernels).
 *
 * Requires: nothing. Ensures: every norm's scale and bias span the normalized axes only.
 * Values: one extra rounding to X's dtype between the normalization and the scale (within the
 * tolerance of any plan; the fused kernels compute both in fp32 again).
 *
 *     before:  %y = RMSNormalization(%x, %s) {axis=-1}          %x f32[2,24,32], %s f32[2,1,32]
 *     after:   %n = RMSNormalization(%x, ones f32[32]) {axis=-1}
 *              %y = Mul(%n, %s)
 */
import { Tensor } from '@paradit/ir';
import type { RewriteRule } from './rewrite';
import { rewriteTo } from './rewrite';
import { rewritePass } from './rewriter';

// Norm(x, scale[per sample], bias?[per sample]) -> Add(Mul(Norm(x, 1, 0), scale), bias)
const splitSampleScales: RewriteRule = (n) => {
  if (n.op !== 'RMSNormalization' && n.op !== 'LayerNormalization') return undefined;
  const x = n.inputs[0];
  const scale = n.inputs[1];
  const bias = n.op === 'LayerNormalization' ? n.inputs[2] : undefined;
  if (!x || !scale) return undefined;
  const a = n.attrs['axis'];
  const axis0 = a?.kind === 'int' ? a.value : -1;
  const axis = axis0 < 0 ? axis0 + x.shape.length : axis0;
  const normRank = x.shape.length - axis;
  const perSample = (v: typeof scale | null | undefined): boolean => !!v && v.shape.length > normRank;
  if (!perSample(scale) && !perSample(bias)) return undefined;
  // Only the first output (Y) may be read: the statistics outputs do not depend on the parameters.
  const normShape = x.shape.slice(axis);
  if (!normShape.every((d): d is number => typeof d === 'number')) return undefined;
  return rewriteTo((b) => {
    const size = normShape.reduce((p, d) => p * d, 1);
    const ones = b.constant(Tensor.from(x.dtype, normShape, new Array<number>(size).fill(1)));
    const ins = n.op === 'LayerNormalization' ? [x, ones, b.constant(Tensor.zeros(x.dtype, normShape))] : [x, ones];
    const normed = b.add(n.op, ins, n.attrs, { numOutputs: n.outputs.length });
    let y = b.op('Mul', [normed[0]!, scale]);
    if (bias) y = b.op('Add', [y, bias]);
    return [y, ...normed.slice(1)];
  });
};

export const splitSampleNormScales = rewritePass(
  'split-sample-norm-scales',
  'norms with per-sample scale or bias -> unit norm, then Mul and Add',
  [splitSampleScales],
);
