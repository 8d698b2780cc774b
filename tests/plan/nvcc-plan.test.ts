/**
 * The plan's kernels/module.cu (fused fragments and flash attention from different emitters,
 * deduplicated into one file) compiles with the local nvcc for sm_90a into kernels/module.fatbin (cubin + PTX).
 * Skips with a printed reason when nvcc is not on PATH.
 */
import fs from 'node:fs';
import path from 'node:path';
import { findNvcc, writePlan } from '@paradit/codegen-cuda';
import { compileModule } from '@paradit/compiler';
import { buildTinyDit, TINY_DIT } from '../models/tiny-dit';
import { planMeta, tempDir } from './helpers';
import { skipReason } from '../skip-reason';

const nvcc = findNvcc();
const NO_NVCC = 'skipped: nvcc is not on PATH (plans then carry module.cu only and the runtime uses NVRTC)';
if (!nvcc) skipReason(__filename, NO_NVCC);

(nvcc ? describe : describe.skip)('module.cu compiles with nvcc', () => {
  it('bf16 tiny DiT with head dim 64: fragments + flash attention -> module.fatbin', async () => {
    const c = compileModule(buildTinyDit({ ...TINY_DIT, headDim: 64, mask: true }), { dtype: 'bf16' });
    const dir = path.join(tempDir(), 'plan');
    const w = await writePlan(dir, c.built, c.memory, planMeta('bf16'), { nvcc: nvcc! });
    expect(w.plan.kernels.cubin).toBe('kernels/module.fatbin');
    expect(fs.statSync(path.join(dir, 'kernels', 'module.fatbin')).size).toBeGreaterThan(1000);
    const src = fs.readFileSync(path.join(dir, 'kernels', 'module.cu'), 'utf8');
    expect(src).toMatch(/paradit_attn_fwd_bf16_d64_(bool|additive)/);
    // Every kernel the program launches is defined in the source.
    for (const i of w.plan.program) if (i.op === 'kernel') expect(src).toContain(i.kernel);
  });
});
