/**
 * The CUDA fill kernel of generated weights (cuda/fill-weights.ts), its exact source text built as
 * a host program with g++ (the PARADIT_FILL_HOST shim: blocks and threads as loops, bit casts
 * through memcpy), is bit-equal to the IR's generator: randomTensor rounded to the source dtype,
 * converted and encoded in the plan dtype (what the plan writer would have put in weights.bin),
 * for f32/bf16/f16 sources and plan dtypes, over many seeds (53-bit ones included), fan-ins and
 * element counts. Guards against any drift between the GPU fill and the JS generator (a wrong
 * shift, a signed/unsigned slip, double rounding, a lost seed half). Also checks that nvcc accepts
 * the same text as CUDA (when nvcc is on PATH). Skips with a printed reason without g++.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tensor, randomTensor } from '@paradit/ir';
import { encodeTensor, generatedWeightBytes } from '../src/index';
import type { GeneratedWeight } from '../src/index';
import { FILL_HOST_SHIM, FILL_KERNEL_SOURCE, fillKernelArgs } from '../src/cuda/fill-weights';

const HARNESS = String.raw`
#include <stdio.h>
#include <stdlib.h>
/* argv: out-file n lo hi fanIn from to grid block: runs every (block, thread) of the launch. */
int main(int argc, char** argv) {
  if (argc != 10) return 2;
  long long n = atoll(argv[2]);
  int lo = atoi(argv[3]), hi = atoi(argv[4]), fanIn = atoi(argv[5]), from = atoi(argv[6]), to = atoi(argv[7]);
  gridDim.x = (unsigned)atoi(argv[8]);
  blockDim.x = (unsigned)atoi(argv[9]);
  size_t bytes = (size_t)n * (to == 0 ? 4 : 2);
  unsigned char* out = (unsigned char*)calloc(bytes ? bytes : 1, 1);
  for (blockIdx.x = 0; blockIdx.x < gridDim.x; blockIdx.x++)
    for (threadIdx.x = 0; threadIdx.x < blockDim.x; threadIdx.x++) paradit_fill_uniform(out, n, lo, hi, fanIn, from, to);
  FILE* f = fopen(argv[1], "wb");
  fwrite(out, 1, bytes, f);
  fclose(f);
  return 0;
}
`;

function build(): { exe?: string; dir?: string; reason?: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-fill-'));
  const src = path.join(dir, 'fill.cpp');
  fs.writeFileSync(src, FILL_HOST_SHIM + FILL_KERNEL_SOURCE + HARNESS);
  const exe = path.join(dir, 'fill');
  try {
    // -ffp-contract=off: no fused multiply-add on the host either (the kernel has none to fuse).
    execFileSync('g++', ['-O2', '-ffp-contract=off', '-Wall', '-Wextra', '-Werror', '-o', exe, src, '-lm'], { stdio: 'pipe' });
    return { exe, dir };
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    if (/ENOENT/.test(err.message)) return { reason: 'g++ is not on PATH' };
    throw new Error(`the fill kernel does not build with g++:\n${err.stderr?.toString() ?? err.message}`);
  }
}

const env = build();
if (env.reason) console.log(`fill-weights host tests skipped: ${env.reason}`);
const maybe = env.reason ? describe.skip : describe;

const DT = ['f32', 'bf16', 'f16'] as const;

/** The reference: randomTensor in the source dtype, converted like the plan writer, encoded. */
function reference(g: GeneratedWeight): Uint8Array {
  const src = randomTensor(g.from, [g.count / g.fanIn, g.fanIn], g.seed);
  const conv = g.from === g.dtype ? src : Tensor.normalized(g.dtype, src.shape, Float32Array.from(src.data));
  return encodeTensor(conv, g.dtype);
}

function runKernel(g: GeneratedWeight, grid: number, block: number): Buffer {
  const a = fillKernelArgs(g);
  const out = path.join(env.dir!, `out-${g.seed}-${g.count}-${g.from}-${g.dtype}.bin`);
  execFileSync(env.exe!, [out, String(a.n), String(a.lo), String(a.hi), String(a.fanIn), String(a.from), String(a.to), String(grid), String(block)]);
  return fs.readFileSync(out);
}

const recipe = (seed: number, rows: number, fanIn: number, from: GeneratedWeight['from'], dtype: GeneratedWeight['dtype']): GeneratedWeight => ({
  buf: 0, generator: 'uniform-jenkins32', seed, count: rows * fanIn, fanIn, from, dtype,
});

maybe('the generated-weights fill kernel, built on the host', () => {
  // Seeds: small, one with a high half, 53-bit extremes; fan-ins from 1 (scalars, biases) to FLUX's widest.
  const seeds = [0, 1, 0x7fffffff, 0x80000000, 2 ** 32 + 5, 2 ** 40 + 12345, Number.MAX_SAFE_INTEGER, 3141592653589793];
  const shapes: [number, number][] = [[1, 1], [7, 1], [3, 5], [16, 64], [2, 3072], [1, 12288], [65, 1031]];
  const cases = DT.flatMap((from) => DT.map((dtype) => [from, dtype] as const));

  it.each(cases)('%s source encoded as %s: bit-equal to randomTensor for 8 seeds x 7 shapes', (from, dtype) => {
    let k = 0;
    for (const seed of seeds) {
      for (const [rows, fanIn] of shapes) {
        const g = recipe(seed, rows, fanIn, from, dtype);
        // Vary the launch shape: the grid-stride loop must cover every element exactly once.
        const grid = 1 + (k % 3);
        const block = [1, 7, 32][k++ % 3]!;
        const got = runKernel(g, grid, block);
        const want = reference(g);
        if (!got.equals(Buffer.from(want))) {
          const w = Buffer.from(want);
          const at = [...got].findIndex((b, i) => b !== w[i]);
          throw new Error(`seed ${seed} [${rows},${fanIn}] ${from}->${dtype}: first differing byte ${at} (kernel ${got[at]}, randomTensor ${w[at]})`);
        }
        // The runtime's CPU fill (generated-weights.ts) is the same bytes.
        expect(Buffer.from(generatedWeightBytes(g)).equals(got)).toBe(true);
      }
    }
  });

  it('a large f32 -> bf16 tensor (past the workers\' 64 Ki chunk) on a many-block launch', () => {
    const g = recipe(2 ** 45 + 77, 70, 3072, 'f32', 'bf16');
    expect(runKernel(g, 40, 256).equals(Buffer.from(reference(g)))).toBe(true);
  });

  it('f16 rounding reaches subnormals, and a zero-element recipe writes nothing', () => {
    // fan-in 2^20: bound 2^-10, so the smallest values are far below f16's normal range (6.1e-5).
    const g = recipe(99, 1, 1 << 20, 'f32', 'f16');
    const got = runKernel(g, 8, 256);
    expect(got.equals(Buffer.from(reference(g)))).toBe(true);
    const h = new Uint16Array(got.buffer, got.byteOffset, got.length / 2);
    expect(h.some((x) => (x & 0x7c00) === 0 && (x & 0x3ff) !== 0)).toBe(true);
    expect(runKernel(recipe(5, 0, 3, 'bf16', 'bf16'), 1, 1).length).toBe(0);
  });
});

describe('the fill kernel as CUDA', () => {
  const nvcc = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).stdout.trim();
  (nvcc ? it : it.skip)('nvcc compiles FILL_KERNEL_SOURCE for sm_90a (the text NVRTC gets at load)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-fill-nvcc-'));
    fs.writeFileSync(path.join(dir, 'fill.cu'), FILL_KERNEL_SOURCE);
    const r = spawnSync(nvcc, ['-gencode', 'arch=compute_90a,code=sm_90a', '-std=c++17', '-cubin', '-Werror', 'all-warnings', '-o', path.join(dir, 'fill.cubin'), path.join(dir, 'fill.cu')], { encoding: 'utf8' });
    expect(r.stderr + r.stdout).toBe('');
    expect(r.status).toBe(0);
    expect(fs.statSync(path.join(dir, 'fill.cubin')).size).toBeGreaterThan(0);
  }, 120_000);
});
