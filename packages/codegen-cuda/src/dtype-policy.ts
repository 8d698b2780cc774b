/**
 * apply-dtype-policy: chooses the storage dtype of every value for `--dtype bf16|fp16|fp32`.
 *
 * Requires: a fused module (default pipeline). Ensures: the module still runs in the interpreter
 * (it is the reference for plans of that dtype), and
 *   - contractions (linear, MatMul, Gemm, Einsum, Conv, attention q/k/v) read and write the chosen
 *     dtype T: their float operands are cast to T (weights converted once, lazily);
 *   - norm weights follow the normalized tensor's dtype;
 *   - everything else keeps the dtype of its operands; where an op needs equal float dtypes and
 *     operands differ, the widest non-constant one wins (constants convert to it), so timestep
 *     and positional math that is fp32 before the first linear (sinusoid tables, Cos/Sin for rope)
 *     stays fp32 and no constant is rounded before high-precision arithmetic reads it;
 *   - dequantize_fp8_rows (--comm-dtype fp8) writes T (the attention or linear reading it casts to T);
 *   - f64 is computed in f32 (the plan format has no f64); an explicit Cast to f32 stays (a
 *     bf16-exported model keeps its upcasts), a Cast to f16/bf16 casts to T, no-op Casts vanish;
 *   - graph inputs and outputs keep their declared dtypes (outputs are cast back), state
 *     (First Block Cache's X / X.next pairs) included; placements are dropped (a sharded module
 *     becomes one rank's program on local shapes).
 * Statistics (norm mean/variance, softmax, LSE) are fp32 inside the ops whatever the storage dtype.
 *
 * `--dtype fp8` (docs/fp8.md) is the bf16 policy, then the passes' quantize-linears-fp8 on the
 * result: linear layers inside transformer blocks become quantize_fp8_rows + linear_fp8 (their
 * weights quantized from the original fp32 constant, not from its bf16 rounding), every other
 * value keeps its bf16 choice; `keepBf16` patterns keep named layers in bf16.
 *
 *   before (T = bf16):  %3 = linear(%x: f32[1,64,16], %w: f32[16,32], %b: f32[32]) : f32[1,64,32]
 *   after:              %c = Cast(%x) {to=16} : bf16[1,64,16]
 *                       %3 = linear(%c, %w': bf16[16,32], %b': bf16[32]) : bf16[1,64,32]
 */
import { ConstData, DType, Graph, IrError, Module, Node, Tensor, Value, buildNode, dtypeToOnnx, isFloat, isIrError, tensorType } from '@paradit/ir';
import { opsWith } from '@paradit/ir';
import { quantizeLinearsFp8 } from '@paradit/passes';
import type { KeepPattern } from '@paradit/passes';
import { rebuildModule } from '@paradit/ir';
import type { ReplayCtx } from '@paradit/ir';
import type { Pass } from '@paradit/passes';

/** A plan's precision: a storage dtype, or 'fp8' (bf16 storage, e4m3 linear layers). */
export type PlanPrecision = 'bf16' | 'f16' | 'f32' | 'fp8';

/** CLI spelling (`--dtype fp16`) to the IR dtype. */
export function parsePrecision(s: string): PlanPrecision {
  const m: Record<string, PlanPrecision> = { bf16: 'bf16', fp16: 'f16', f16: 'f16', fp32: 'f32', f32: 'f32', fp8: 'fp8' };
  const d = m[s];
  if (!d) throw new IrError('E_INPUT', `--dtype ${s}: expected bf16, fp16, fp32 or fp8`);
  return d;
}

/** Options of the fp8 precision. */
export interface DtypePolicyOptions {
  /** --keep-bf16 patterns (passes' parseKeepPattern): layers that stay bf16 in an fp8 plan. */
  readonly keepBf16?: readonly KeepPattern[];
}

/** Ops that read and write T for their float operands (GEMM-like and attention). */
const LOW_PRECISION = opsWith('contraction');
/** Ops whose inputs after the first are affine parameters in the normalized tensor's dtype. */
const NORMS = opsWith('statsNorm');

/** Where a converted constant came from, so the plan writer can stream it without caching. */
interface ConvertedConst {
  readonly from: ConstData;
  readonly dtype: DType;
}
const CONVERTED = new WeakMap<ConstData, ConvertedConst>();

export function convertedFrom(c: ConstData): ConvertedConst | undefined {
  return CONVERTED.get(c);
}

/** Converts float data to another float dtype (rounding once). */
export function convertTensor(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return t;
  const data = Float32Array.from(t.data);
  return Tensor.normalized(dtype, t.shape, data);
}

const rank = (d: DType): number => (d === 'f64' ? 3 : d === 'f32' ? 2 : 1);

class Policy {
  private readonly consts = new Map<string, Value>();
  private readonly ids = new WeakMap<Value, number>();
  private nextId = 0;
  constructor(readonly T: DType) {}

  /** f64 is never stored: computed in f32. */
  storage(d: DType): DType {
    return d === 'f64' ? 'f32' : d;
  }

  /** A constant converted to `dtype` (one new Value per constant and dtype). */
  constant(v: Value, dtype: DType): Value {
    const c = v.constant!;
    if (v.dtype === dtype) return v;
    let id = this.ids.get(v);
    if (id === undefined) this.ids.set(v, (id = this.nextId++));
    const key = `${id}:${dtype}`;
    const hit = this.consts.get(key);
    if (hit) return hit;
    const base = CONVERTED.get(c);
    const from = base ? base.from : c;
    const data = new ConstData(tensorType(dtype, v.shape), c.source, () => convertTensor(from.tensor(), dtype));
    CONVERTED.set(data, { from, dtype });
    const nv = new Value(data.type, v.name, data);
    this.consts.set(key, nv);
    return nv;
  }

  /** `v` (new graph) in dtype `d`: constants convert, others get a Cast node. */
  cast(v: Value, d: DType, ctx: ReplayCtx, name: string): Value {
    if (v.dtype === d) return v;
    if (v.constant) return this.constant(v, d);
    return ctx.builder.add('Cast', [v], { to: { kind: 'int', value: dtypeToOnnx(d) } }, { name: `${name}/cast_${d}` })[0]!;
  }

  hook = (node: Node, ctx: ReplayCtx): readonly Value[] | undefined => {
    const ins = node.inputs.map((v) => (v ? ctx.map(v) : null));
    // f64 constants become f32 wherever they are read.
    const base = ins.map((v) => (v && v.constant && v.dtype === 'f64' ? this.constant(v, 'f32') : v));
    if (node.op === 'Cast') return this.castNode(node, base[0]!, ctx);
    if (node.op === 'If') return this.ifNode(node, base, ctx);
    // --comm-dtype fp8: the received payload is written in the storage dtype (attention reads T).
    if (node.op === 'dequantize_fp8_rows') return ctx.replay(node, base, { ...node.attrs, oDtype: { kind: 'int', value: dtypeToOnnx(this.storage(this.T)) } });
    if (LOW_PRECISION.has(node.op)) {
      const attn = node.op === 'attention' || node.op === 'attention_lse';
      const cast = base.map((v, i) => (v && isFloat(v.dtype) && !(attn && i === 3) ? this.cast(v, this.T, ctx, node.name) : v));
      // A ring step keeps its partial output in T like attention (the merge is fp32 anyway).
      if (node.op === 'attention_lse') return ctx.replay(node, cast, { ...node.attrs, oDtype: { kind: 'int', value: dtypeToOnnx(this.T) } });
      return ctx.replay(node, cast);
    }
    if (NORMS.has(node.op) && base[0]) {
      const x = base[0];
      const cast = base.map((v, i) => (i > 0 && v && isFloat(v.dtype) ? this.cast(v, x.dtype, ctx, node.name) : v));
      return ctx.replay(node, cast);
    }
    return this.replayUnifying(node, base, ctx);
  };

  private castNode(node: Node, x: Value, ctx: ReplayCtx): readonly Value[] {
    const to = node.attrs['to'];
    const code = to && to.kind === 'int' ? to.value : -1;
    const orig = node.outputs[0]!.dtype;
    let target: DType = orig;
    if (orig === 'f64') target = 'f32';
    else if (orig === 'bf16' || orig === 'f16') target = this.T;
    if (x.dtype === target) return [x];
    if (x.constant && isFloat(x.dtype) && isFloat(target)) return [this.constant(x, target)];
    if (code < 0) return ctx.replay(node, [x]);
    return ctx.replay(node, [x], { ...node.attrs, to: { kind: 'int', value: dtypeToOnnx(target) } });
  }

  /** Rebuilds both branches; where their output dtypes differ, both end in a Cast to the wider one. */
  private ifNode(node: Node, ins: (Value | null)[], ctx: ReplayCtx): readonly Value[] {
    const branch = (k: string): Graph => {
      const a = node.attrs[k];
      if (!a || a.kind !== 'graph') throw new IrError('E_OP', `${node.label}: missing ${k}`, node.name);
      return ctx.subgraph(a.value);
    };
    let t = branch('then_branch');
    let e = branch('else_branch');
    const want = t.outputs.map((v, i) => {
      const o = e.outputs[i]!;
      if (v.dtype === o.dtype || !isFloat(v.dtype) || !isFloat(o.dtype)) return v.dtype;
      return rank(v.dtype) > rank(o.dtype) ? v.dtype : rank(o.dtype) > rank(v.dtype) ? o.dtype : 'f32';
    });
    t = castOutputs(t, want, node.name, ctx.builder.opset);
    e = castOutputs(e, want, node.name, ctx.builder.opset);
    return ctx.replay(node, ins, { ...node.attrs, then_branch: { kind: 'graph', value: t }, else_branch: { kind: 'graph', value: e } });
  }

  /** Replays as is; if the op rejects mixed float dtypes, unifies them to the widest non-constant one. */
  private replayUnifying(node: Node, ins: (Value | null)[], ctx: ReplayCtx): readonly Value[] {
    const floats = ins.filter((v): v is Value => v !== null && isFloat(v.dtype));
    const mixed = new Set(floats.map((v) => v.dtype)).size > 1;
    if (mixed) {
      try {
        return ctx.replay(node, ins);
      } catch (e) {
        if (!isIrError(e)) throw e;
      }
      const live = floats.filter((v) => !v.constant);
      const pool = live.length > 0 ? live : floats;
      let d = pool[0]!.dtype;
      for (const v of pool) if (v.dtype !== d) d = rank(v.dtype) > rank(d) ? v.dtype : rank(v.dtype) === rank(d) ? 'f32' : d;
      d = this.storage(d);
      return ctx.replay(node, ins.map((v) => (v && isFloat(v.dtype) ? this.cast(v, d, ctx, node.name) : v)));
    }
    return ctx.replay(node, ins);
  }
}

/** The dtype policy as a Module -> Module function (see the header). */
export function applyDtypePolicy(m: Module, T: PlanPrecision, opts: DtypePolicyOptions = {}): Module {
  if (T === 'fp8') {
    const typed = applyDtypePolicy(m, 'bf16');
    return quantizeLinearsFp8(typed, { keepBf16: opts.keepBf16 ?? [], weightSource: (c) => convertedFrom(c)?.from ?? c });
  }
  const p = new Policy(T);
  const g = m.graph;
  // Placements (context parallelism) are dropped with the replay: a plan is one rank's program, on
  // its local shapes, so inputs lose theirs too (else they would disagree with their readers).
  const inputTypes = g.inputs.map((v) => (v.dtype === 'f64' || v.type.placement ? tensorType(v.dtype === 'f64' ? 'f32' : v.dtype, v.shape) : undefined));
  return rebuildModule(m, {
    inputTypes,
    hook: p.hook,
    finishOutputs: (outs, ctx) =>
      outs.map((v, i) => {
        const orig = g.outputs[i]!;
        const want = p.storage(orig.dtype);
        if (v.dtype === want || !isFloat(v.dtype) || !isFloat(want)) {
          // A Cast the policy dropped (already in the storage dtype) must not take the output's
          // name with it: runtimes find outputs such as fbcache.diff by name.
          if (!orig.name || v.name === orig.name) return v;
          return ctx.builder.add('Identity', [v], {}, { name: `output_name_${i}`, outputNames: [orig.name] })[0]!;
        }
        return ctx.builder.add('Cast', [v], { to: { kind: 'int', value: dtypeToOnnx(want) } }, { name: `output_cast_${i}`, outputNames: [orig.name] })[0]!;
      }),
  });
}

/** `g` with Casts appended so that output i has dtype want[i]. */
function castOutputs(g: Graph, want: readonly DType[], name: string, opset: number): Graph {
  const nodes = [...g.nodes];
  const outs = g.outputs.map((v, i) => {
    const d = want[i]!;
    if (v.dtype === d) return v;
    const cast = buildNode(opset, 'Cast', [v], { to: { kind: 'int', value: dtypeToOnnx(d) } }, { name: `${name}/branch_cast_${i}`, outputNames: [v.name] });
    nodes.push(cast);
    return cast.outputs[0]!;
  });
  return outs.every((v, i) => v === g.outputs[i]) ? g : new Graph(g.inputs, nodes, outs, g.name);
}

/** The pass form of `applyDtypePolicy` for `--dtype T`. */
export function dtypePolicyPass(T: PlanPrecision): Pass {
  return { name: 'dtype-policy', description: `storage dtypes for --dtype ${T}: contractions in ${T}, statistics in fp32, graph inputs and outputs as declared`, run: (m) => applyDtypePolicy(m, T) };
}
