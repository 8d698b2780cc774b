/**
 * The op-traits table (ops/traits.ts) replaced a dozen op-name sets spread over the packages. These
 * expectations are those sets as they were written before the table, so a trait edit that changes
 * what a pass or the lowering sees fails here and must be made on purpose.
 */
import { OPS, OP_TRAITS, hasTrait, opsWith } from '@paradit/ir';
import type { OpTrait } from '@paradit/ir';

const sorted = (s: Iterable<string>): string[] => [...s].sort();

// [users, traits asked for, the set those users held before the table]
const BEFORE: [string, OpTrait[], string[]][] = [
  ['passes/rewrite VIEW_OPS (fusion-match, fold-constants, fold-symbolic-shapes)', ['reshape'], ['Reshape', 'Squeeze', 'Unsqueeze', 'Flatten']],
  ['codegen kernels/plan and lower/stub-emitter VIEW_OPS', ['reshape', 'alias'], ['Reshape', 'Squeeze', 'Unsqueeze', 'Flatten', 'Identity']],
  ['lower-collectives LAYOUT', ['reshape', 'alias', 'transpose'], ['Transpose', 'Reshape', 'Identity', 'Squeeze', 'Unsqueeze', 'Flatten']],
  ['layout-trace LAYOUT_OPS', ['reshape', 'transpose'], ['Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Flatten']],
  ['layout-trace REPEAT_OPS', ['repeat'], ['Expand', 'Tile']],
  ['blocks/graph-view METADATA_OPS', ['metadata'], ['Shape', 'Size']],
  ['eliminate-common-subexpressions COMMUTATIVE', ['commutative'], ['Add', 'Mul', 'Equal', 'And', 'Or', 'Xor', 'BitwiseAnd', 'BitwiseOr', 'BitwiseXor']],
  ['dtype-policy LOW_PRECISION', ['contraction'], ['linear', 'MatMul', 'Gemm', 'Einsum', 'Conv', 'ConvTranspose', 'attention', 'attention_lse']],
  ['dtype-policy NORMS', ['statsNorm'], ['rms_norm', 'layer_norm', 'LayerNormalization', 'RMSNormalization', 'GroupNormalization']],
  ['blocks/residual HEAVY (+ linear_fp8, fp8 plans)', ['heavy'], ['MatMul', 'Gemm', 'Conv', 'Einsum', 'linear', 'attention', 'Attention', 'linear_fp8']],
  ['blocks/residual ATTENTION', ['attention'], ['attention', 'Attention']],
  ['blocks/residual MLP_ACTIVATIONS', ['mlpActivation'], ['gelu', 'Gelu', 'silu']],
  ['lower-collectives COMMUNICATING, context-parallel COMMUNICATING', ['communicating'], ['all_to_all', 'all_gather', 'all_reduce', 'ppermute']],
  ['lower-graph PLAN_COLLECTIVES', ['communicating', 'rankSlice'], ['all_to_all', 'all_gather', 'all_reduce', 'ppermute', 'shard_slice']],
  [
    'kernels/fragments ELSEWHERE (+ the fp8 ops)',
    ['ownKernel'],
    ['quantize_fp8_rows', 'linear_fp8', 'dequantize_fp8_rows', 'linear', 'MatMul', 'Gemm', 'Einsum', 'Conv', 'ConvTranspose', 'attention', 'Attention', 'attention_lse', 'lse_merge', 'all_to_all', 'all_gather', 'all_reduce', 'ppermute', 'shard_slice', 'to_token_order', 'from_token_order', 'If'],
  ],
  [
    'lower-collectives NOT_FUSED',
    ['contraction', 'control', 'communicating', 'rankSlice', 'reshape', 'alias', 'transpose'],
    ['linear', 'MatMul', 'Gemm', 'Conv', 'ConvTranspose', 'Einsum', 'attention', 'attention_lse', 'If', 'all_to_all', 'all_gather', 'all_reduce', 'ppermute', 'shard_slice', 'Transpose', 'Reshape', 'Identity', 'Squeeze', 'Unsqueeze', 'Flatten'],
  ],
  [
    'fbcache/analyze DATA_MOVEMENT',
    ['movesData'],
    ['Concat', 'Split', 'Slice', 'Reshape', 'Transpose', 'Identity', 'Squeeze', 'Unsqueeze', 'Flatten', 'to_token_order', 'from_token_order', 'all_gather', 'all_to_all', 'shard_slice'],
  ],
  [
    'mask-token-selection ROWWISE',
    ['rowwise'],
    [
      'Abs', 'Neg', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Sin', 'Cos', 'Tanh', 'Sigmoid', 'Relu', 'Erf',
      'Floor', 'Ceil', 'Round', 'Sign', 'Not', 'IsNaN', 'IsInf', 'Softplus', 'Gelu', 'Mish', 'Clip',
      'LeakyRelu', 'HardSigmoid', 'HardSwish', 'Elu', 'Selu', 'Celu', 'Add', 'Sub', 'Mul', 'Div',
      'Pow', 'Mod', 'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'And', 'Or', 'Xor',
      'Max', 'Min', 'Sum', 'Mean', 'Where', 'Cast', 'CastLike', 'Identity', 'Dropout',
      'Transpose', 'Reshape', 'Squeeze', 'Unsqueeze', 'Flatten', 'Expand',
    ],
  ],
  [
    'mask-token-selection SHAPE_MATH',
    ['shapeMath'],
    [
      'Shape', 'Size', 'Gather', 'Concat', 'Slice', 'Squeeze', 'Unsqueeze', 'Reshape', 'Cast', 'Add', 'Sub',
      'Mul', 'Div', 'Max', 'Min', 'Neg', 'Abs', 'Equal', 'Where', 'Identity', 'Range', 'ConstantOfShape', 'Expand', 'Mod',
      'Transpose', 'Flatten', 'Tile', 'Floor', 'Ceil', 'Less', 'Greater', 'Not', 'And', 'Or',
    ],
  ],
];

describe('op traits', () => {
  test.each(BEFORE)('%s: the traits give exactly the old set', (_users, traits, before) => {
    expect(sorted(opsWith(...traits))).toEqual(sorted(new Set(before)));
  });

  test('the table has an entry for every op of the op table and nothing else', () => {
    expect(sorted(Object.keys(OP_TRAITS))).toEqual(sorted(Object.keys(OPS)));
  });

  test('hasTrait agrees with the table and knows no traits of unknown names', () => {
    expect(hasTrait('Reshape', 'reshape')).toBe(true);
    expect(hasTrait('Transpose', 'reshape')).toBe(false);
    expect(hasTrait('not_an_op', 'reshape')).toBe(false);
    // An inherited property name is not an op.
    expect(hasTrait('toString', 'reshape')).toBe(false);
  });

  test('no op lists a trait twice', () => {
    for (const [op, ts] of Object.entries(OP_TRAITS)) expect([op, new Set(ts).size]).toEqual([op, ts.length]);
  });
});
