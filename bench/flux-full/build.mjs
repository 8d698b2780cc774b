// Bundles bench/flux-full/check.ts into .gpu-work/flux-full/check.cjs (koffi external: the device
// finds it through .gpu/setup.sh's NODE_PATH) and writes the tiny random-weights model the GPU
// check compiles (.gpu-work/flux-full/tiny/model.onnx). Run here before a device call.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const outdir = path.join(root, '.gpu-work/flux-full');
fs.mkdirSync(outdir, { recursive: true });
const pkg = (p) => path.join(root, `packages/${p}/src/index.ts`);
await build({
  entryPoints: [path.join(root, 'bench/flux-full/check.ts')],
  outfile: path.join(outdir, 'check.cjs'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'inline',
  alias: { '@paradit/ir': pkg('ir'), '@paradit/runtime': pkg('runtime') },
  external: ['koffi', 'onnxruntime-node'],
  logLevel: 'warning',
});
execFileSync('node', [path.join(outdir, 'check.cjs'), 'make-tiny', path.join(outdir, 'tiny')], { stdio: 'inherit' });
console.log(`built ${outdir}/check.cjs`);
