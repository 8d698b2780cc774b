// Bundles bench/fp8/quality.ts and gemm-fp8.ts into .gpu-work/fp8/*.cjs (runs here or on the device, next to
// the CLI bundle it shells out to). See bench/fp8/quality.ts and bench/fp8/run-gpu.sh.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const outdir = path.join(root, '.gpu-work/fp8');
fs.mkdirSync(outdir, { recursive: true });
for (const name of ['quality', 'gemm-fp8']) await build({
  entryPoints: [path.join(root, `bench/fp8/${name}.ts`)],
  outfile: path.join(outdir, `${name}.cjs`),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  alias: {
    '@paradit/ir': path.join(root, 'packages/ir/src/index.ts'),
    '@paradit/runtime': path.join(root, 'packages/runtime/src/index.ts'),
  },
  external: ['koffi', 'onnxruntime-node'],
  logLevel: 'warning',
});
console.log(`built ${outdir}/quality.cjs and gemm-fp8.cjs`);
