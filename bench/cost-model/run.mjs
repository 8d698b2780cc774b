// Bundles and runs bench/cost-model/predict-cp.ts (no GPU needed): `node bench/cost-model/run.mjs [FIXTURE_DIR]`.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const outdir = path.join(root, '.gpu-work/cost-model');
fs.mkdirSync(outdir, { recursive: true });
const out = path.join(outdir, 'predict-cp.cjs');
await build({
  entryPoints: [path.join(here, 'predict-cp.ts')],
  outfile: out,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  alias: Object.fromEntries(['ir', 'passes', 'codegen-cuda', 'compiler', 'runtime'].map((p) => [`@paradit/${p}`, path.join(root, `packages/${p}/src/index.ts`)])),
  external: ['koffi', 'onnxruntime-node'],
  logLevel: 'warning',
});
const { spawnSync } = await import('node:child_process');
const r = spawnSync(process.execPath, [out, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
