/**
 * canonicalize: the cleanup pipeline, run to a fixpoint. Every later pass (fusion, sharding,
 * codegen) may assume its Ensures: no shape arithmetic when shapes are static, no no-op ops, no
 * chained views or transposes, no duplicate constants or nodes, no dead code.
 *
 * Requires: nothing. Ensures: the conjunction of its passes' Ensures, at once (a whole round
 * changed nothing). Values: bit-identical except -0 + 0 (see remove-noop-ops).
 *
 *     before:  %1 = Shape(%x) : i64[2]                    (%x: f32[4,6])
 *              %2 = ReduceProd(%1) {keepdims=1} : i64[1]
 *              %3 = Reshape(%x, %2) : f32[24]
 *              %4 = Identity(%3) : f32[24]
 *              %5 = Exp(%x) : f32[4,6];  %6 = Exp(%x) : f32[4,6];  %7 = Add(%5, %6) : f32[4,6]
 *     after:   %k = const i64[1] [24];  %3 = Reshape(%x, %k) : f32[24]
 *              %5 = Exp(%x) : f32[4,6];  %7 = Add(%5, %5) : f32[4,6]
 */
import type { Pass } from './pass';
import { fixpointPass } from './pipeline';
import { foldConstants } from './fold-constants';
import { foldSymbolicShapesPass } from './fold-symbolic-shapes';
import { removeNoopOps } from './remove-noop-ops';
import { splitSampleNormScales } from './split-sample-norm-scales';
import { foldTransposeChains } from './fold-transpose-chains';
import { foldReshapeChains } from './fold-reshape-chains';
import { eliminateCommonSubexpressions } from './eliminate-common-subexpressions';
import { eliminateDeadCode } from './eliminate-dead-code';

const CANONICALIZE_PASSES: readonly Pass[] = [
  foldConstants, // first: shape arithmetic becomes constants, which the rules below read
  foldSymbolicShapesPass, // shape arithmetic over symbolic dims: size vectors become constants, Reshapes get shared symbols
  splitSampleNormScales, // per-sample norm scales (opset-23 exports) become a Mul the fusions and sharding rules know
  removeNoopOps, // with constant shapes known, Reshape/Expand/Cast/... to the same type are visible
  foldTransposeChains, // before the reshape folding: it turns unit-axis Transposes into Reshapes
  foldReshapeChains, // merges those Reshapes with their neighbours
  eliminateCommonSubexpressions, // merges equal constants the rules created and duplicated shape code
  eliminateDeadCode, // last: removes what folding and merging left unread
];

export const canonicalize: Pass = fixpointPass(
  'canonicalize',
  'folds constants, removes no-ops, folds reshape/transpose chains, merges duplicates and removes dead code, to a fixpoint',
  CANONICALIZE_PASSES,
);
