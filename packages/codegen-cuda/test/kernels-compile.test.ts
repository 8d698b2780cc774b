/**
 * The emitted kernel sources compile with the local nvcc for sm_90a (skipped, with the reason
 * printed, where nvcc is absent). All kernels of a test go into one .cu, so nvcc runs few times:
 * flux-dev-2x4 after the default pipeline (the benchmark model), every other fixture, the tiny
 * DiT built in code (f32 and bf16), and a set of op-coverage fragments.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFileSync } from 'child_process';
import type { Graph, Module } from '@paradit/ir';
import { loadModel } from '@paradit/ir';
import { createPassContext, defaultPipeline, runPipeline } from '@paradit/passes';
import { emitFragment } from '../src/kernels';
import { cutFragments } from '../src/kernels/fragments';
import { buildTinyDit, TINY_DIT } from '../../../tests/models/tiny-dit';
import { FIXTURES, HAVE_FIXTURES, NO_FIXTURES_REASON } from '../../../tests/fixtures';
import { coverageFragments } from '../src/kernels/check-cases';
import { skipReason } from '../../../tests/skip-reason';

const NVCC = ['/usr/local/bin/nvcc', '/usr/local/cuda/bin/nvcc'].find((p) => fs.existsSync(p));

/** Kernel sources of the fragments; kernels identical up to their entry name are kept once. */
function sourcesOf(graphs: readonly Graph[], tag: string, seen = new Set<string>()): { src: string; count: number } {
  let src = '';
  let count = 0;
  graphs.forEach((g, i) => {
    for (const k of emitFragment(g, { namePrefix: `${tag}${i}` }).kernels) {
      count++;
      const key = k.source.split(k.entry).join('ENTRY');
      if (seen.has(key)) continue;
      seen.add(key);
      src += k.source;
    }
  });
  return { src, count };
}

function compile(src: string, name: string): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-kernels-'));
  const file = path.join(dir, `${name}.cu`);
  fs.writeFileSync(file, src);
  try {
    execFileSync(NVCC!, ['-gencode', 'arch=compute_90a,code=sm_90a', '-std=c++17', '-c', file, '-o', path.join(dir, `${name}.o`)], { stdio: 'pipe' });
  } catch (e) {
    const err = e as { stderr?: Buffer };
    throw new Error(`nvcc failed on ${name}.cu (kept at ${file}):\n${err.stderr?.toString().slice(0, 4000)}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

const fused = (m: Module): Module => runPipeline(m, defaultPipeline(), createPassContext());
const maybe = NVCC ? test : test.skip;
if (!NVCC) skipReason(__filename, 'skipped: nvcc not found at /usr/local/bin/nvcc or /usr/local/cuda/bin/nvcc');

describe('emitted kernels compile with nvcc (sm_90a)', () => {
  maybe('flux-dev-2x4 and the other fixtures', () => {
    if (!HAVE_FIXTURES) {
      console.log(NO_FIXTURES_REASON);
      return;
    }
    let src = '';
    let count = 0;
    const seen = new Set<string>();
    for (const d of fs.readdirSync(FIXTURES).sort()) {
      if (!fs.existsSync(path.join(FIXTURES, d, 'model.onnx'))) continue;
      const m = fused(loadModel(path.join(FIXTURES, d), { randomWeights: { seed: 0 } }));
      const got = sourcesOf(cutFragments(m.graph), d.replace(/[^a-z0-9]/gi, '_') + '_f', seen);
      src += got.src;
      count += got.count;
    }
    expect(count).toBeGreaterThan(50);
    compile(src, 'fixtures');
  });

  maybe('tiny DiT (f32 and bf16 casts) and op-coverage fragments', () => {
    const tiny = fused(buildTinyDit(TINY_DIT));
    const masked = fused(buildTinyDit({ ...TINY_DIT, mask: true, seed: 3 }));
    const a = sourcesOf(cutFragments(tiny.graph), 'tiny_f');
    const b = sourcesOf(cutFragments(masked.graph), 'tinym_f');
    const c = sourcesOf(coverageFragments().map((x) => x.graph), 'cov_f');
    expect(a.count + b.count + c.count).toBeGreaterThan(20);
    compile(a.src + b.src + c.src, 'coverage');
  });
});
