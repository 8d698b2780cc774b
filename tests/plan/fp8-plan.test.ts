/**
 * fp8 plans (docs/fp8.md): the tiny DiT compiled with --dtype fp8 runs on the CPU backend exactly
 * as its interpreter reference says (memory plan, the quantize kernel's (q, s) buffers, the FP8
 * gemm's scales are all exercised), stays within the fp8 tolerance of the fp32 model, and its
 * plan.json carries f8e4m3fn weights and scaled gemms; --keep-bf16 keeps layers out; every
 * fixture with test data passes within 0.1 (skips with a reason without ../shared); the plan's
 * module.cu (with the row-quantize kernel) builds with nvcc for sm_90a (skips without nvcc).
 */
import fs from 'node:fs';
import path from 'node:path';
import { interpret } from '@paradit/ir';
import { findNvcc, writePlan } from '@paradit/codegen-cuda';
import { compileModule, compileToPlan } from '@paradit/compiler';
import { parseKeepPattern } from '@paradit/passes';
import { CpuPlanBackend, compareTensors, listTestDataSets, loadPlan, readTestDataSet } from '@paradit/runtime';
import { buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { FIXTURES, HAVE_FIXTURES, NO_FIXTURES_REASON, fixturesWithTestData } from '../fixtures';
import { compilePlanDir, planMeta, relErrors, tempDir } from './helpers';
import { skipReason } from '../skip-reason';

/** docs/fp8.md: ~0.037 per e4m3 layer, 0.1 allows a few chained layers. */
const FP8_TOL = 0.1;

describe('fp8 plans on the CPU backend', () => {
  it('tiny DiT: the plan equals its reference, is within 0.1 of fp32, and holds scaled e4m3 gemms', async () => {
    const m = buildTinyDit();
    const inputs = tinyDitInputs();
    const { compiled, plan, backend } = await compilePlanDir(m, 'fp8');
    expect(plan.target.dtype).toBe('fp8');
    const outs = await backend.step(new Map(m.graph.inputs.map((v, i) => [v.name, inputs[i]!])));
    // The plan computes its reference (the interpreter on the post-policy module). Lowering splits
    // (attention decomposition, fragments) reorder fp32 sums; a last-bit difference in a bf16
    // input can flip one e4m3 rounding (a 2^-3 step), hence 1e-2 rather than bf16's usual 1e-3.
    for (const e of relErrors(compiled.reference, inputs, outs)) expect(e).toBeLessThan(1e-2);
    const fp32 = interpret(m, inputs)[0]!;
    const e32 = compareTensors(outs.get(m.graph.outputs[0]!.name)!, fp32).relL2;
    expect(e32).toBeLessThan(FP8_TOL);
    expect(e32).toBeGreaterThan(1e-4);
    const scaled = plan.program.filter((i) => i.op === 'gemm' && i.scaleA !== undefined);
    expect(scaled).toHaveLength(14);
    const byId = new Map(plan.buffers.map((b) => [b.id, b]));
    for (const g of scaled) {
      if (g.op !== 'gemm') continue;
      expect([byId.get(g.a.buf)!.dtype, byId.get(g.b.buf)!.dtype, byId.get(g.scaleA!)!.dtype, byId.get(g.out.buf)!.dtype]).toEqual(['f8e4m3fn', 'f8e4m3fn', 'f32', 'bf16']);
      expect(byId.get(g.b.buf)!.space).toBe('weights');
    }
    // Layers reading one activation (q/k/v, the two modulation linears of silu(temb)) share one
    // quantization after common-subexpression elimination: 9 kernels for 14 layers.
    expect(plan.program.filter((i) => i.op === 'kernel' && i.kernel.startsWith('pdt_fp8_quantize_rows_'))).toHaveLength(9);
  });

  it('--keep-bf16 keeps the matching layers as plain bf16 gemms', async () => {
    const m = buildTinyDit();
    const c = compileModule(m, { dtype: 'fp8', keepBf16: [parseKeepPattern('blocks.1.*')] });
    const dir = path.join(tempDir(), 'plan');
    const w = await writePlan(dir, c.built, c.memory, planMeta('fp8'), { nvcc: false });
    expect(w.plan.program.filter((i) => i.op === 'gemm' && i.scaleA !== undefined)).toHaveLength(7);
  });
});

if (!HAVE_FIXTURES) skipReason(__filename, NO_FIXTURES_REASON);
const fixtures = fixturesWithTestData();

(fixtures.length > 0 ? describe : describe.skip)('fixture fp8 plans on the CPU backend', () => {
  it.each(fixtures.length > 0 ? fixtures : ['(no fixtures)'])('%s (fp8 plan) is within 0.1 of the reference output', async (name) => {
    const model = path.join(FIXTURES, name);
    const out = path.join(tempDir(), 'plan');
    const r = await compileToPlan(model, out, { dtype: 'fp8', nvcc: false });
    const set = readTestDataSet(listTestDataSets(model)[0]!);
    const backend = new CpuPlanBackend(loadPlan(out, { verifyWeights: false }));
    const outs = await backend.step(new Map(r.plan.inputs.map((x, k) => [x.name, set.inputs[k]!])));
    expect(r.plan.program.some((i) => i.op === 'gemm' && i.scaleA !== undefined)).toBe(true);
    r.plan.outputs.forEach((x, k) => {
      const c = compareTensors(outs.get(x.name)!, set.outputs[k]!);
      expect({ output: x.name, ok: c.relL2 <= FP8_TOL && c.nanMismatch === 0 }).toEqual({ output: x.name, ok: true });
    });
  });
});

const nvcc = findNvcc();
if (!nvcc) skipReason(__filename, 'skipped: nvcc is not on PATH (the fp8 module.cu compile check needs it)');
(nvcc ? describe : describe.skip)('fp8 module.cu compiles with nvcc', () => {
  it('tiny DiT fp8 plan: fragments + row-quantize kernel -> module.fatbin', async () => {
    const c = compileModule(buildTinyDit(), { dtype: 'fp8' });
    const dir = path.join(tempDir(), 'plan');
    const w = await writePlan(dir, c.built, c.memory, planMeta('fp8'), { nvcc: nvcc! });
    expect(w.plan.kernels.cubin).toBe('kernels/module.fatbin');
    const src = fs.readFileSync(path.join(dir, 'kernels', 'module.cu'), 'utf8');
    expect(src).toContain('cvt.rn.satfinite.e4m3x2.f32');
    expect(src).toContain('pdt_fp8_quantize_rows_bf16');
  }, 120_000);
});
