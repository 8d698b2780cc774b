// Bundles bench/flux/bench-step.ts into .gpu-work/flux/bench-step.cjs (koffi external: the device
// finds it through .gpu/setup.sh's NODE_PATH). Run here before a device call; see bench/README.md.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const outdir = path.join(root, '.gpu-work/flux');
fs.mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: [path.join(root, 'bench/flux/bench-step.ts')],
  outfile: path.join(outdir, 'bench-step.cjs'),
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
console.log(`built ${outdir}/bench-step.cjs`);
