/**
 * quantize-linears-fp8, rewrite: every layer the plan marks becomes a row quantization of its
 * input and an FP8 GEMM over weights quantized at compile time (lazily: the e4m3 weight and its
 * per-channel scales are computed when the constant is first read, once per weight).
 *
 *   linear(x, w [K,N], bias) {transB=0} -> (q, s) = quantize_fp8_rows(x)
 *                                          linear_fp8(q, s, wq [N,K], ws [N], bias) {transB=1, oDtype=dtype(x)}
 */
import { ConstData, Graph, Node, Tensor, Value, dtypeToOnnx, quantizeWeightColumns, tensorType } from '@paradit/ir';
import { applyRewrites } from '../rewriter';
import { rewriteTo } from '../rewrite';
import type { RewriteRule } from '../rewrite';
import type { Fp8Plan } from './plan';
import { layerOf } from './plan';

export interface ApplyFp8Options {
  readonly opset: number;
  /**
   * The data to quantize for a weight constant (default: the constant itself). The dtype policy
   * passes the original fp32 weight of a constant it converted to bf16, so weights are rounded
   * once, to e4m3, not twice.
   */
  readonly weightSource?: (c: ConstData) => ConstData;
}

interface QuantizedWeight {
  readonly wq: Value;
  readonly ws: Value;
}

/** Quantized constants per weight, so a weight read by two layers is quantized once. */
class WeightQuantizer {
  private readonly done = new Map<Value, QuantizedWeight>();
  constructor(private readonly source: (c: ConstData) => ConstData) {}

  of(w: Value, transB: boolean): QuantizedWeight {
    const hit = this.done.get(w);
    if (hit) return hit;
    const [r0, r1] = w.shape as [number, number];
    const K = transB ? r1 : r0;
    const N = transB ? r0 : r1;
    const from = this.source(w.constant!);
    let memo: { wq: Tensor; ws: Tensor } | undefined;
    const q = (): { wq: Tensor; ws: Tensor } => (memo ??= quantizeWeightColumns(from.tensor(), transB));
    const wqData = new ConstData(tensorType('f8e4m3fn', [N, K]), { kind: 'inline' }, () => q().wq);
    const wsData = new ConstData(tensorType('f32', [N]), { kind: 'inline' }, () => q().ws);
    const base = w.name || 'weight';
    const out = { wq: new Value(wqData.type, `${base}.fp8`, wqData), ws: new Value(wsData.type, `${base}.fp8_scale`, wsData) };
    this.done.set(w, out);
    return out;
  }
}

function fp8Rule(plan: Fp8Plan, weights: WeightQuantizer): RewriteRule {
  // linear(x, w, bias) | MatMul(x, W) -> linear_fp8(quantize_fp8_rows(x), wq, ws, bias)
  return (n: Node) => {
    if (!plan.fp8Nodes.has(n)) return undefined;
    const l = layerOf(n);
    if (!l) return undefined;
    const { wq, ws } = weights.of(l.w, l.transB);
    const out = n.outputs[0]!;
    return rewriteTo((b) => {
      const [q, s] = b.add('quantize_fp8_rows', [l.x], {}, { name: `${n.name}/quantize`, numOutputs: 2 });
      const attrs = { transB: { kind: 'int' as const, value: 1 }, oDtype: { kind: 'int' as const, value: dtypeToOnnx(out.dtype) } };
      return b.add('linear_fp8', [q!, s!, wq, ws, l.bias ?? null], attrs, { name: n.name, outputNames: [out.name] })[0]!;
    });
  };
}

/** Rewrites the plan's FP8 layers of `g` (and its subgraphs); `g` itself when there are none. */
export function applyFp8Linears(g: Graph, plan: Fp8Plan, opts: ApplyFp8Options): Graph {
  if (plan.fp8Nodes.size === 0) return g;
  const weights = new WeightQuantizer(opts.weightSource ?? ((c) => c));
  return applyRewrites(g, [fp8Rule(plan, weights)], { opset: opts.opset });
}
