// Bundles the CUDA runtime's GPU scripts (smoke test, GEMM bench) into .gpu-work/runtime/*.cjs,
// koffi external (the device finds it through .gpu/setup.sh's NODE_PATH). Run here, then carry
// .gpu and .gpu-work/runtime to the device: see bench/runtime/README.md.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const outdir = path.join(root, '.gpu-work/runtime');
fs.mkdirSync(outdir, { recursive: true });
const alias = {
  '@paradit/ir': path.join(root, 'packages/ir/src/index.ts'),
  '@paradit/runtime': path.join(root, 'packages/runtime/src/index.ts'),
};
for (const [entry, out] of [
  ['bench/runtime/smoke.ts', 'smoke.cjs'],
  ['bench/gemm/gemm-bench.ts', 'gemm-bench.cjs'],
  ['bench/runtime/run-plan.ts', 'run-plan.cjs'],
]) {
  await build({
    entryPoints: [path.join(root, entry)],
    outfile: path.join(outdir, out),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: 'inline',
    alias,
    external: ['koffi', 'onnxruntime-node'],
    logLevel: 'warning',
  });
}
fs.copyFileSync(path.join(root, 'bench/gemm/torch_gemm.py'), path.join(outdir, 'torch_gemm.py'));
console.log(`built ${outdir}`);
