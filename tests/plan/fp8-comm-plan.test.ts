/**
 * --comm-dtype fp8 plans (docs/fp8.md): the tiny DiT compiled for Ulysses 2 x ring 2 moves its
 * attention payloads as e4m3 bytes (f8e4m3fn buffers in the all_to_all and ppermute
 * instructions, NCCL uint8 on the GPU), with the quantize and dequantize kernels around them, and
 * the plan's module.cu builds with nvcc for sm_90a (skips without nvcc). The CPU-backend numerics
 * are tests/cli/fp8-comm-cli.test.ts (check --backend cpu) and the pass's simulated-rank tests.
 */
import fs from 'node:fs';
import path from 'node:path';
import { makeMesh } from '@paradit/ir';
import { findNvcc, writePlan } from '@paradit/codegen-cuda';
import { compileModule } from '@paradit/compiler';
import { NCCL_DTYPE } from '../../packages/runtime/src/cuda/nccl-abi';
import { buildTinyDit, TINY_DIT } from '../models/tiny-dit';
import { planMeta, tempDir } from './helpers';
import { skipReason } from '../skip-reason';

const mesh = makeMesh({ ulysses: 2, ring: 2 });
const compile = (commDtype?: 'fp8') => compileModule(buildTinyDit({ ...TINY_DIT, heads: 4 }), { dtype: 'bf16', mesh, ...(commDtype ? { commDtype } : {}) });

describe('--comm-dtype fp8 plans', () => {
  it('collectives move f8e4m3fn bytes plus f32 scales; quantize/dequantize kernels around them', async () => {
    const planOf = async (c: ReturnType<typeof compile>) => (await writePlan(path.join(tempDir(), 'plan'), c.built, c.memory, planMeta('bf16'), { nvcc: false })).plan;
    const plain = await planOf(compile());
    const fp8 = await planOf(compile('fp8'));
    const dtypesOf = (p: typeof plain): string[] => {
      const byId = new Map(p.buffers.map((b) => [b.id, b.dtype]));
      return p.program.flatMap((i) => (i.op === 'collective' && (i.collective === 'all_to_all' || i.collective === 'send_recv') ? [byId.get(i.send)!] : []));
    };
    expect(new Set(dtypesOf(plain))).toEqual(new Set(['bf16', 'f32']));
    const d8 = dtypesOf(fp8);
    // Every payload collective is doubled (values, scales): half of them e4m3, half f32 scales.
    expect(d8.filter((d) => d === 'f8e4m3fn').length).toBe(dtypesOf(plain).length);
    expect(d8.filter((d) => d === 'f32').length).toBe(dtypesOf(plain).length);
    const kernels = fp8.program.filter((i) => i.op === 'kernel').map((i) => (i as { kernel: string }).kernel);
    expect(kernels.filter((k) => k.startsWith('pdt_fp8_dequantize_rows_')).length).toBeGreaterThan(0);
    expect(kernels.filter((k) => k.startsWith('pdt_fp8_quantize_rows_')).length).toBeGreaterThan(0);
    // NCCL has no fp8 type: the runtime sends e4m3 as ncclUint8 (1).
    expect(NCCL_DTYPE.f8e4m3fn).toBe(NCCL_DTYPE.u8);
  });
});

const nvcc = findNvcc();
if (!nvcc) skipReason(__filename, 'skipped: nvcc is not on PATH (the --comm-dtype fp8 module.cu compile check needs it)');
(nvcc ? describe : describe.skip)('--comm-dtype fp8 module.cu compiles with nvcc', () => {
  it('byte-copy packing kernels and the dequantize kernel build for sm_90a', async () => {
    const c = compile('fp8');
    const dir = path.join(tempDir(), 'plan');
    const w = await writePlan(dir, c.built, c.memory, planMeta('bf16'), { nvcc: nvcc! });
    expect(w.plan.kernels.cubin).toBe('kernels/module.fatbin');
    const src = fs.readFileSync(path.join(dir, 'kernels', 'module.cu'), 'utf8');
    expect(src).toContain('cvt.rn.f16x2.e4m3x2');
    expect(src).toContain('pdt_fp8_dequantize_rows_bf16');
  }, 120_000);
});
