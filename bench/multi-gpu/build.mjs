// Bundles the multi-GPU smoke test into .gpu-work/multi-gpu/smoke.cjs (koffi external: the device
// finds it through .gpu/setup.sh's NODE_PATH). Run here, then carry .gpu and .gpu-work/multi-gpu to
// the device: see bench/multi-gpu/README.md.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const outdir = path.join(root, '.gpu-work/multi-gpu');
fs.mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: [path.join(root, 'bench/multi-gpu/smoke.ts')],
  outfile: path.join(outdir, 'smoke.cjs'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'inline',
  alias: {
    '@paradit/ir': path.join(root, 'packages/ir/src/index.ts'),
    '@paradit/runtime': path.join(root, 'packages/runtime/src/index.ts'),
  },
  external: ['koffi', 'onnxruntime-node'],
  logLevel: 'warning',
});
console.log(`built ${outdir}`);
