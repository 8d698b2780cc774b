// The main job, end to end on the bundled example: build a small DiT and export it to ONNX (with
// reference outputs from ONNX Runtime), then inspect it and check ParaDiT's interpreter against it.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const cli = path.join(root, 'packages/cli/dist/paradit.cjs');
const example = path.join(root, 'examples/tiny-dit');

function step(title, file, args) {
  process.stdout.write(`\n== ${title}\n$ ${[path.relative(root, file), ...args].join(' ')}\n`);
  execFileSync(process.execPath, [file, ...args], { stdio: 'inherit', cwd: root });
}

// Bundled inside node_modules so that the external onnxruntime-node resolves from the repo.
const tmp = path.join(root, 'node_modules/.cache/paradit-demo');
fs.mkdirSync(tmp, { recursive: true });
const maker = path.join(tmp, 'make-example.cjs');
await build({
  entryPoints: [path.join(root, 'examples/make-example.ts')],
  outfile: maker,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  external: ['onnxruntime-node'],
  alias: { '@paradit/ir': path.join(root, 'packages/ir/src/index.ts') },
  logLevel: 'warning',
});
if (!fs.existsSync(cli)) await import(path.join(root, 'scripts/build.mjs'));
try {
  step('build the example DiT and its reference outputs', maker, [example]);
  step('inspect it', cli, ['inspect', example]);
  step('check ParaDiT against the reference', cli, ['check', example]);
} catch (e) {
  process.exitCode = typeof e.status === 'number' ? e.status : 1;
}
