#!/usr/bin/env node
// Writes the generated attention kernels, the launch plan (args exactly as emitAttention().args()
// returns them) and the GPU scripts into .gpu-work/attention/ (git-ignored; carried to the GPU).
// Usage: node bench/attention/gen.mjs [outDir]; then on the GPU: bash .gpu-work/attention/run.sh
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const out = resolve(process.argv[2] ?? join(root, '.gpu-work/attention'));
mkdirSync(out, { recursive: true });
const bundle = join(out, 'attention.cjs');
await build({
  entryPoints: [join(root, 'packages/codegen-cuda/src/kernels/attention.ts')],
  bundle: true, platform: 'node', format: 'cjs', outfile: bundle, logLevel: 'warning',
});
const { emitAttention } = createRequire(import.meta.url)(bundle);

const specs = {
  bf16_d128: { spec: { dtype: 'bf16', headDim: 128, mask: 'none', withLse: false } },
  bf16_d128_n128: { spec: { dtype: 'bf16', headDim: 128, mask: 'none', withLse: false }, tuning: { bn: 128 } },
  bf16_d128_nopp: { spec: { dtype: 'bf16', headDim: 128, mask: 'none', withLse: false }, tuning: { pingpong: false } },
  bf16_d64_n128: { spec: { dtype: 'bf16', headDim: 64, mask: 'none', withLse: false }, tuning: { bn: 128 } },
  f16_d128_lse: { spec: { dtype: 'f16', headDim: 128, mask: 'none', withLse: true } },
  bf16_d64: { spec: { dtype: 'bf16', headDim: 64, mask: 'none', withLse: false } },
  bf16_d128_lse: { spec: { dtype: 'bf16', headDim: 128, mask: 'none', withLse: true } },
  f16_d64_bool_lse: { spec: { dtype: 'f16', headDim: 64, mask: 'bool', withLse: true } },
  bf16_d128_f32mask_lse: { spec: { dtype: 'bf16', headDim: 128, mask: 'additive-f32', withLse: true } },
  bf16_d128_dv64_bf16mask: { spec: { dtype: 'bf16', headDim: 128, headDimV: 64, mask: 'additive-bf16', withLse: false } },
  f16_d64_f16mask_lse: { spec: { dtype: 'f16', headDim: 64, mask: 'additive-f16', withLse: true } },
  bf16_d128_bool: { spec: { dtype: 'bf16', headDim: 128, mask: 'bool', withLse: false } },
  bf16_d128_dv64_lse: { spec: { dtype: 'bf16', headDim: 128, headDimV: 64, mask: 'none', withLse: true } },
  f16_d64_dv128: { spec: { dtype: 'f16', headDim: 64, headDimV: 128, mask: 'none', withLse: false } },
};

/** Strides of q/k/v/o for a layout: 'bhsd' contiguous [B,N,S,H] or 'bshd' inside [B,S,N*H]. */
function seqStrides(layout, heads, s, d) {
  return layout === 'bshd' ? { b: s * heads * d, h: d, s: heads * d } : { b: heads * s * d, h: s * d, s: d };
}

function makeCase(c) {
  const { spec } = specs[c.kernel];
  const dv = spec.headDimV ?? spec.headDim;
  const { batch, heads, kvHeads, sq, skv } = c;
  const launch = {
    batch, heads, kvHeads, sq, skv, scale: c.scale ?? 1 / Math.sqrt(spec.headDim),
    q: seqStrides(c.layout, heads, sq, spec.headDim),
    k: seqStrides(c.layout, kvHeads, skv, spec.headDim),
    v: seqStrides(c.layout, kvHeads, skv, dv),
    o: seqStrides(c.layout, heads, sq, dv),
  };
  if (spec.mask !== 'none') {
    const [mb, mh] = c.maskShape;
    const plane = sq * skv;
    launch.mask = {
      b: mb === 1 ? 0 : mh * plane, h: mh === 1 ? 0 : plane,
      q: c.maskTransposed ? 1 : skv, k: c.maskTransposed ? sq : 1,
    };
  }
  return { ...c, launch };
}

const S = 4608;
const cases = [
  { name: 'bf16 d128 S4608 bhsd', kernel: 'bf16_d128', batch: 1, heads: 24, kvHeads: 24, sq: S, skv: S, layout: 'bhsd', bench: true, sdpa: true },
  { name: 'bf16 d128 S4608 bshd (strided)', kernel: 'bf16_d128', batch: 1, heads: 24, kvHeads: 24, sq: S, skv: S, layout: 'bshd', bench: true },
  { name: 'bf16 d128 S4608 bn128', kernel: 'bf16_d128_n128', batch: 1, heads: 24, kvHeads: 24, sq: S, skv: S, layout: 'bhsd', bench: true },
  { name: 'bf16 d128 S4608 no ping-pong', kernel: 'bf16_d128_nopp', batch: 1, heads: 24, kvHeads: 24, sq: S, skv: S, layout: 'bhsd', bench: true },
  { name: 'bf16 d64 S4608 bn128', kernel: 'bf16_d64_n128', batch: 1, heads: 24, kvHeads: 24, sq: S, skv: S, layout: 'bhsd', bench: true },
  { name: 'bf16 d128 S4608 bhsd (repeat)', kernel: 'bf16_d128', batch: 1, heads: 24, kvHeads: 24, sq: S, skv: S, layout: 'bhsd', bench: true, seed: 3 },
  { name: 'f16 d128 S4608 lse', kernel: 'f16_d128_lse', batch: 1, heads: 24, kvHeads: 24, sq: S, skv: S, layout: 'bhsd', bench: true, sdpa: true },
  { name: 'bf16 d64 S4608', kernel: 'bf16_d64', batch: 1, heads: 24, kvHeads: 24, sq: S, skv: S, layout: 'bhsd', bench: true, sdpa: true },
  { name: 'bf16 d128 f32 mask S4608', kernel: 'bf16_d128_f32mask_lse', batch: 1, heads: 24, kvHeads: 24, sq: S, skv: S, layout: 'bhsd', maskShape: [1, 1], bench: true, sdpa: true },
  { name: 'bf16 d128 bool mask S4608', kernel: 'bf16_d128_bool', batch: 1, heads: 24, kvHeads: 24, sq: S, skv: S, layout: 'bhsd', maskShape: [1, 1], bench: true, sdpa: true },
  { name: 'bf16 d128 GQA 24/8 S4608 bshd', kernel: 'bf16_d128', batch: 1, heads: 24, kvHeads: 8, sq: S, skv: S, layout: 'bshd', bench: true },
  { name: 'bf16 d128 B2 S1024 (short)', kernel: 'bf16_d128', batch: 2, heads: 24, kvHeads: 24, sq: 1024, skv: 1024, layout: 'bshd', bench: true, sdpa: true },
  { name: 'bf16 d128 lse odd GQA', kernel: 'bf16_d128_lse', batch: 2, heads: 6, kvHeads: 3, sq: 1000, skv: 777, layout: 'bshd', scale: 0.07 },
  { name: 'bf16 d128 tiny', kernel: 'bf16_d128_lse', batch: 1, heads: 2, kvHeads: 1, sq: 1, skv: 1, layout: 'bhsd' },
  { name: 'bf16 d128 skv<BN', kernel: 'bf16_d128_lse', batch: 1, heads: 2, kvHeads: 2, sq: 200, skv: 5, layout: 'bhsd' },
  { name: 'bf16 d128 skv=0 (zeros, lse -inf)', kernel: 'bf16_d128_lse', batch: 1, heads: 2, kvHeads: 2, sq: 70, skv: 0, layout: 'bhsd' },
  { name: 'bf16 d128 odd, 2 tiles exactly', kernel: 'bf16_d128', batch: 2, heads: 4, kvHeads: 2, sq: 333, skv: 320, layout: 'bshd' },
  { name: 'bf16 d128 skv = 2 tiles + 1', kernel: 'bf16_d128', batch: 1, heads: 2, kvHeads: 1, sq: 100, skv: 321, layout: 'bshd' },
  { name: 'bf16 d128 skv = 1 tile exactly', kernel: 'bf16_d128_lse', batch: 1, heads: 2, kvHeads: 1, sq: 100, skv: 160, layout: 'bshd' },
  { name: 'bf16 d64 odd', kernel: 'bf16_d64', batch: 2, heads: 4, kvHeads: 2, sq: 333, skv: 1111, layout: 'bshd' },
  { name: 'bf16 d128/64 lse odd', kernel: 'bf16_d128_dv64_lse', batch: 2, heads: 4, kvHeads: 4, sq: 300, skv: 999, layout: 'bshd' },
  { name: 'f16 d64/128 odd', kernel: 'f16_d64_dv128', batch: 1, heads: 4, kvHeads: 2, sq: 130, skv: 517, layout: 'bhsd' },
  { name: 'f16 d64 bool GQA dead rows', kernel: 'f16_d64_bool_lse', batch: 2, heads: 8, kvHeads: 2, sq: 300, skv: 513, layout: 'bshd', maskShape: [2, 1], deadRows: true },
  { name: 'bf16 d128 f32 mask bcast dead rows', kernel: 'bf16_d128_f32mask_lse', batch: 2, heads: 4, kvHeads: 4, sq: 257, skv: 1000, layout: 'bhsd', maskShape: [1, 1], deadRows: true },
  { name: 'bf16 d128/64 bf16 mask transposed', kernel: 'bf16_d128_dv64_bf16mask', batch: 1, heads: 4, kvHeads: 1, sq: 129, skv: 63, layout: 'bshd', maskShape: [1, 4], maskTransposed: true },
  { name: 'f16 d64 f16 mask per-head', kernel: 'f16_d64_f16mask_lse', batch: 3, heads: 2, kvHeads: 1, sq: 64, skv: 200, layout: 'bhsd', maskShape: [3, 2] },
  { name: 'f16 d128 lse S4608 again', kernel: 'f16_d128_lse', batch: 1, heads: 3, kvHeads: 3, sq: 4608, skv: 4608, layout: 'bshd', seed: 7 },
].map(makeCase);

const kernels = {};
const plan = [];
for (const [name, entry] of Object.entries(specs)) {
  const kernel = emitAttention(entry.spec, entry.tuning ?? {});
  writeFileSync(join(out, `${name}.cu`), kernel.source);
  kernels[name] = { entry: kernel.entry, block: kernel.block, smem: kernel.smem, spec: entry.spec };
}
for (const c of cases) {
  const kernel = emitAttention(specs[c.kernel].spec, specs[c.kernel].tuning ?? {});
  plan.push({ ...c, grid: kernel.grid(c.launch), args: kernel.args(c.launch) });
}
writeFileSync(join(out, 'plan.json'), JSON.stringify({ kernels, cases: plan }, null, 1));
for (const f of ['run.py', 'run.sh']) copyFileSync(join(here, f), join(out, f));
console.log(`wrote ${Object.keys(kernels).length} kernels and ${plan.length} cases to ${out}`);
