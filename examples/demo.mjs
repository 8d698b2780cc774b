// The main job, end to end on the bundled example: build a small DiT and export it to ONNX (with
// reference outputs from ONNX Runtime); inspect it, check the interpreter against the reference,
// check a 4-way sharded compile on simulated ranks, compile a bf16 CUDA plan and run it (on the GPU
// when one is present, else on the CPU plan backend), and denoise with First Block Cache.
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
  step('check a Ulysses 2 x ring 2 compile on 4 simulated ranks', cli, ['check', example, '--ulysses', '2', '--ring', '2']);
  const plan = path.join(example, 'plan');
  step('compile a bf16 CUDA plan', cli, ['compile', example, '-o', plan, '--target', 'cuda', '--dtype', 'bf16', '--fbcache', '0.1']);
  const gpu = fs.existsSync('/dev/nvidia0') || fs.existsSync('/dev/nvidiactl');
  step(`run the plan (${gpu ? 'GPU' : 'CPU plan backend: no GPU here'})`, cli, ['run', plan, '--inputs', path.join(example, 'test_data_set_0'), '--compare', '--backend', gpu ? 'cuda' : 'cpu']);
  step('denoise 8 steps with First Block Cache (threshold 0.6)', cli, ['denoise', example, '--steps', '8', '--fbcache', '0.6']);
} catch (e) {
  process.exitCode = typeof e.status === 'number' ? e.status : 1;
}
