/**
 * quantize-linears-fp8: the linear layers of `--dtype fp8` (docs/fp8.md).
 *
 * Requires: a fused module (linear ops; block discovery finds the transformer blocks). Runs after
 * the bf16 dtype policy in compile (apply-dtype-policy with fp8), or on the fused fp32 module in
 * `inspect --dtype fp8 --after quantize-linears-fp8`: the FP8 layers write their input's dtype.
 * Ensures: every layer plan.ts marks is quantize_fp8_rows + linear_fp8 (ops/paradit-fp8.ts states
 * the exact arithmetic: per-token dynamic activation scales, per-output-channel weight scales
 * fixed at compile time, fp32 accumulation, one rounding to the output dtype); every other layer,
 * and everything else, is unchanged. The module still runs in the interpreter, which is therefore
 * the reference for fp8 plans on every backend.
 *
 *   before:  %y = linear(%x: bf16[1,16,64], %w: bf16[64,128], %b: bf16[128]) {transB=0}
 *   after:   %q, %s = quantize_fp8_rows(%x)                   : f8e4m3fn[1,16,64], f32[1,16,1]
 *            %y = linear_fp8(%q, %s, %w.fp8: f8e4m3fn[128,64], %w.fp8_scale: f32[128], %b)
 *                 {transB=1, oDtype=16}                        : bf16[1,16,128]
 *
 * Analysis (which layers, and why the others stay) is plan.ts; the rewrite is apply.ts.
 */
import type { Module } from '@paradit/ir';
import type { Pass } from '../pass';
import { applyFp8Linears } from './apply';
import type { ApplyFp8Options } from './apply';
import { planFp8Linears } from './plan';
import type { KeepPattern } from './patterns';

export interface QuantizeLinearsFp8Options {
  /** --keep-bf16 patterns (patterns.ts). */
  readonly keepBf16?: readonly KeepPattern[];
  readonly weightSource?: ApplyFp8Options['weightSource'];
}

/** The pass as a Module -> Module function. */
export function quantizeLinearsFp8(m: Module, opts: QuantizeLinearsFp8Options = {}): Module {
  const plan = planFp8Linears(m.graph, opts.keepBf16 ?? []);
  const g = applyFp8Linears(m.graph, plan, { opset: m.opset, ...(opts.weightSource ? { weightSource: opts.weightSource } : {}) });
  return g === m.graph ? m : m.withGraph(g);
}

/** The named pass (for pipelines, `--after` and the verify instrument). */
export function quantizeLinearsFp8Pass(opts: QuantizeLinearsFp8Options = {}): Pass {
  return {
    name: 'quantize-linears-fp8',
    description: 'linear layers inside transformer blocks -> per-token e4m3 quantization + FP8 GEMM with per-channel weight scales',
    run: (m) => quantizeLinearsFp8(m, opts),
  };
}
