/**
 * Every seed export (tests/seed: the real diffusers HunyuanVideo, Mochi, CogVideoX and FLUX
 * classes) compiles to a CUDA plan, fp32 and bf16, with real kernels (no stubs): Tile (HunyuanVideo's
 * repeat), Pad (Mochi's pooler), ScatterND (CogVideoX's rope slice assignment) and CumSum go
 * through the indexed and scatter kernels, which once refused these models. Each plan's
 * kernels/module.cu builds with nvcc for sm_90a (skipped, with the reason printed, without nvcc),
 * and the plan's CPU backend reproduces the export's reference output (relative L2 <= 1e-3 fp32,
 * 5e-2 bf16). The GPU run of the same plans is bench/flux/fixtures-gpu.sh's job.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModel } from '@paradit/ir';
import { compileModule, testDataShapes } from '@paradit/compiler';
import type { PlanPrecision } from '@paradit/codegen-cuda';
import { checkModelDirOnPlan } from '../packages/cli/src/commands/check-backend';

const ROOT = path.join(__dirname, 'seed');
const folders = fs.existsSync(ROOT) ? fs.readdirSync(ROOT).filter((d) => fs.existsSync(path.join(ROOT, d, 'model.onnx'))).sort() : [];
const NVCC = ['/usr/local/bin/nvcc', '/usr/local/cuda/bin/nvcc'].find((p) => fs.existsSync(p));

function compileSeed(folder: string, dtype: PlanPrecision): { source: string; entries: number; stubs: number } {
  const dir = path.join(ROOT, folder);
  const raw = loadModel(dir);
  const data = testDataShapes(dir);
  const shapes = new Map<string, readonly number[]>();
  raw.graph.inputs.forEach((v, k) => {
    if (data[k] && v.shape.some((d) => typeof d === 'string')) shapes.set(v.name, data[k]!);
  });
  return compileModule(raw, { dtype, shapes }).built.kernels;
}

/** Entry names of the kernels that take the once-refused ops (the fragment emitter's tags). */
const NEEDS: Readonly<Record<string, RegExp>> = {
  hunyuan: /pointwise/,
  mochi: /pointwise/,
  cogvideox_ts17: /scatter_nd/,
};

describe('seed exports compile to CUDA plans', () => {
  if (folders.length === 0) {
    test.skip('tests/seed is absent', () => undefined);
    return;
  }
  const sources: string[] = [];
  for (const folder of folders) {
    for (const dtype of ['f32', 'bf16'] as const) {
      test(`${folder} ${dtype}`, () => {
        const k = compileSeed(folder, dtype);
        expect(k.stubs).toBe(0);
        expect(k.entries).toBeGreaterThan(5);
        const need = Object.entries(NEEDS).find(([p]) => folder.startsWith(p))?.[1];
        if (need) expect(k.source).toMatch(need);
        if (folder.startsWith('hunyuan')) expect(k.source).toMatch(/% \d+\)/); // Tile's index math
        if (folder.startsWith('mochi')) expect(k.source).toMatch(/>= 0 && .* < \d+/); // Pad's bounds
        sources.push(k.source);
      });
    }
  }

  (NVCC ? test : test.skip)('their kernels/module.cu build with nvcc for sm_90a (one plan per once-refused family)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-seed-nvcc-'));
    // One plan per once-refused family (nvcc takes ~10 s each): Tile f32, Pad bf16, ScatterND f32.
    const picked: [string, number][] = [['hunyuan_dynamo18', 0], ['mochi_ts17', 1], ['cogvideox_ts17', 0]];
    for (const [f, j] of picked) {
      const i = folders.indexOf(f);
      if (i < 0) continue;
      {
        const src = sources[2 * i + j]!;
        const file = path.join(dir, `${f}_${j}.cu`);
        fs.writeFileSync(file, src);
        try {
          execFileSync(NVCC!, ['-gencode', 'arch=compute_90a,code=sm_90a', '-std=c++17', '-c', file, '-o', `${file}.o`], { stdio: 'pipe' });
        } catch (e) {
          throw new Error(`nvcc failed on ${file}:\n${(e as { stderr?: Buffer }).stderr?.toString().slice(0, 3000)}`);
        }
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const folder of folders.filter((f) => /^(hunyuan|mochi|cogvideox)/.test(f))) {
    for (const dtype of ['f32', 'bf16'] as const) {
      test(`${folder} ${dtype}: check --backend cpu on the plan`, async () => {
        const r = await checkModelDirOnPlan(path.join(ROOT, folder), { backend: 'cpu', dtype });
        expect(r.checks.length).toBeGreaterThan(0);
        for (const c of r.checks) expect(c.relL2).toBeLessThanOrEqual(dtype === 'f32' ? 1e-3 : 5e-2);
        expect(r.ok).toBe(true);
      });
    }
  }
});
