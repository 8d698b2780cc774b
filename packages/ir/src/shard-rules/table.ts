/**
 * The sharding rule of every op (core.ts explains what a rule decides). Exhaustive over OpKind:
 * a new op does not compile until it says how placements flow through it; ops with no better
 * answer gather their operands (correct everywhere, fast nowhere) and are listed as such.
 */
import type { OpKind } from '../ops/op-kinds';
import type { ShardRule, ShardView } from './core';
import { replicateAll } from './core';
import { REPLICATED, distOf, formatDist, sameDist } from '../placement';
import { broadcastRule, unaryRule } from './elementwise';
import { concatRule, expandRule, gatherRule, reshapeRule, sliceRule, splitRule, transposeRule } from './layout';
import { axisOpRule, batchParallelRule, gemmRule, lastAxisRule, matmulRule, onnxNormRule, reduceRule, rowScaledRule, softmaxAxes } from './nn';
import { convRowsRule, resizeRowsRule } from './rows';
import { attentionLseShardRule, attentionShardRule, lseMergeShardRule, ropeShardRule } from './attention';
import {
  allGatherShardRule,
  allReduceShardRule,
  allToAllShardRule,
  fromTokenOrderShardRule,
  sameShardRule,
  shardSliceShardRule,
  toTokenOrderShardRule,
} from './collective';

/** Gathers every operand: the op mixes what a split would separate, or has no rule yet. */
function gathered(why: string): ShardRule {
  return {
    propagate: (v) => replicateAll(v, `${v.op}: ${why}; its operands are gathered`),
    trace: () => 'origin',
  };
}

const mixes = gathered('mixes positions along any axis');

/**
 * If: the condition is whole on every rank (all ranks take the same branch); the outputs are
 * placed as both branches return them (branches built per rank, e.g. by insert-cache-gate).
 * Unplaced branches give replicated outputs, as a gathered If would.
 */
const ifRule: ShardRule = {
  propagate(v) {
    const t = v.attr.graph('then_branch').outputs.map((o) => distOf(o.type.placement));
    const e = v.attr.graph('else_branch').outputs.map((o) => distOf(o.type.placement));
    t.forEach((d, i) => {
      if (e[i] && !sameDist(d, e[i]!)) throw new Error(`If: output ${i} is placed ${formatDist(d)} by the then-branch but ${formatDist(e[i]!)} by the else-branch`);
    });
    return { ins: v.dists.map(() => REPLICATED), outs: t };
  },
  trace: () => 'origin',
};

/**
 * Shape/Size: when planning, a placed operand stays as it is (the pass replaces the node by a
 * constant of the global shape); in a compiled module a placed operand would give its per-rank
 * shape, so it must be whole.
 */
const shapeOf: ShardRule = {
  propagate: (v) => (v.coords === 'global' ? { ins: v.dists, outs: v.outShapes.map(() => REPLICATED) } : replicateAll(v, `${v.op} of a placed value gives its per-rank shape`)),
  trace: () => 'stop',
};
const notSharded = gathered('is not sharded (no sharding rule)');

const norm = (axis: number, v: ShardView): number => (axis < 0 ? axis + v.inShapes[0]!.length : axis);
const argAxis = axisOpRule((v) => [norm(v.attr.int('axis', 0), v)], (v) => v.attr.int('keepdims', 1) === 0);
const cumSum = axisOpRule((v) => {
  const a = v.values[1]?.toArray()[0];
  return a === undefined ? Array.from({ length: v.inShapes[0]!.length }, (_, i) => i) : [norm(a, v)];
});
const topK = axisOpRule((v) => [norm(v.attr.int('axis', -1), v)]);
const softmax = axisOpRule(softmaxAxes);

export const SHARD_RULES: { readonly [K in OpKind]: ShardRule } = {
  // Elementwise: unary maps keep their placement; n-ary ops broadcast.
  Abs: unaryRule, Neg: unaryRule, Exp: unaryRule, Log: unaryRule, Sqrt: unaryRule, Reciprocal: unaryRule,
  Sin: unaryRule, Cos: unaryRule, Tan: unaryRule, Tanh: unaryRule, Asin: unaryRule, Acos: unaryRule,
  Atan: unaryRule, Sinh: unaryRule, Cosh: unaryRule, Asinh: unaryRule, Acosh: unaryRule, Atanh: unaryRule,
  Sigmoid: unaryRule, Relu: unaryRule, Erf: unaryRule, Floor: unaryRule, Ceil: unaryRule, Round: unaryRule,
  Sign: unaryRule, Not: unaryRule, IsNaN: unaryRule, IsInf: unaryRule, Softplus: unaryRule, Softsign: unaryRule,
  HardSigmoid: unaryRule, HardSwish: unaryRule, Elu: unaryRule, Selu: unaryRule, Celu: unaryRule,
  LeakyRelu: unaryRule, ThresholdedRelu: unaryRule, Gelu: unaryRule, Mish: unaryRule, BitwiseNot: unaryRule,
  Cast: unaryRule, CastLike: unaryRule, Identity: unaryRule, Dropout: unaryRule,
  Clip: broadcastRule, PRelu: broadcastRule,
  Add: broadcastRule, Sub: broadcastRule, Mul: broadcastRule, Div: broadcastRule, Pow: broadcastRule, Mod: broadcastRule,
  Equal: broadcastRule, Less: broadcastRule, LessOrEqual: broadcastRule, Greater: broadcastRule,
  GreaterOrEqual: broadcastRule, And: broadcastRule, Or: broadcastRule, Xor: broadcastRule,
  BitwiseAnd: broadcastRule, BitwiseOr: broadcastRule, BitwiseXor: broadcastRule, BitShift: broadcastRule,
  Max: broadcastRule, Min: broadcastRule, Sum: broadcastRule, Mean: broadcastRule, Where: broadcastRule,
  // Reductions and scans: the axes they work along must be whole.
  ReduceMean: reduceRule, ReduceSum: reduceRule, ReduceMax: reduceRule, ReduceMin: reduceRule,
  ReduceProd: reduceRule, ReduceL1: reduceRule, ReduceL2: reduceRule, ReduceLogSum: reduceRule,
  ReduceLogSumExp: reduceRule, ReduceSumSquare: reduceRule,
  ArgMax: argAxis, ArgMin: argAxis, CumSum: cumSum, TopK: topK,
  Softmax: softmax, LogSoftmax: softmax, Hardmax: softmax,
  // Contractions and normalizations.
  MatMul: matmulRule, Gemm: gemmRule, Einsum: notSharded,
  Conv: convRowsRule, ConvTranspose: batchParallelRule, AveragePool: batchParallelRule, MaxPool: batchParallelRule,
  GlobalAveragePool: batchParallelRule, GlobalMaxPool: batchParallelRule, GroupNormalization: batchParallelRule,
  InstanceNormalization: batchParallelRule, BatchNormalization: batchParallelRule,
  LayerNormalization: onnxNormRule, RMSNormalization: onnxNormRule,
  Attention: notSharded, RotaryEmbedding: notSharded,
  // Layout.
  Reshape: reshapeRule, Flatten: reshapeRule, Squeeze: reshapeRule, Unsqueeze: reshapeRule,
  Transpose: transposeRule, Concat: concatRule, Split: splitRule, Slice: sliceRule, Gather: gatherRule,
  Expand: expandRule,
  GatherElements: mixes, GatherND: mixes, ScatterND: mixes, ScatterElements: mixes, Tile: mixes, Pad: mixes,
  DepthToSpace: mixes, SpaceToDepth: mixes, Resize: resizeRowsRule, Trilu: mixes, NonZero: mixes,
  // Shape/Size of a placed value become constants in the sharding pass (global shapes are static).
  Shape: shapeOf, Size: shapeOf,
  ConstantOfShape: notSharded, Range: notSharded, Constant: notSharded, OneHot: notSharded, EyeLike: notSharded,
  If: ifRule,
  // ParaDiT ops.
  attention: attentionShardRule, rope: ropeShardRule,
  rms_norm: lastAxisRule, layer_norm: lastAxisRule, linear: lastAxisRule,
  // quantize-linears-fp8 runs after sharding (on one rank's program), so linear_fp8 never meets a
  // placement; quantize-comm-fp8 (--comm-dtype fp8) quantizes and dequantizes placed rows.
  quantize_fp8_rows: lastAxisRule, dequantize_fp8_rows: rowScaledRule, linear_fp8: notSharded,
  gelu: unaryRule, silu: unaryRule, modulate: broadcastRule, gated_residual: broadcastRule,
  // Collectives: placement transitions.
  all_gather: allGatherShardRule, shard_slice: shardSliceShardRule, all_to_all: allToAllShardRule,
  all_reduce: allReduceShardRule, ppermute: sameShardRule,
  to_token_order: toTokenOrderShardRule, from_token_order: fromTokenOrderShardRule,
  attention_lse: attentionLseShardRule, lse_merge: lseMergeShardRule,
};
