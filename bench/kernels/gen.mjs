// Generates the GPU numerical check and micro-benchmark of the non-GEMM kernels into a folder
// (default .gpu-work/kernels-check): per case the kernels' CUDA source, a launch manifest, input
// data and the interpreter's expected outputs. Run here (Node), then on the GPU machine:
//   bash bench/kernels/run-check.sh .gpu-work/kernels-check
// Usage: node bench/kernels/gen.mjs [outDir]
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import fs from 'node:fs';
import os from 'node:os';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const alias = {
  '@paradit/ir': path.join(root, 'packages/ir/src/index.ts'),
  '@paradit/passes': path.join(root, 'packages/passes/src/index.ts'),
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-gen-'));
const outfile = path.join(tmp, 'gen-cases.cjs');
await build({ entryPoints: [path.join(here, 'gen-cases.ts')], outfile, bundle: true, platform: 'node', target: 'node20', format: 'cjs', alias, logLevel: 'warning' });
const { generate } = await import(outfile);
const outDir = path.resolve(process.argv[2] ?? path.join(root, '.gpu-work/kernels-check'));
generate(outDir);
fs.rmSync(tmp, { recursive: true, force: true });
