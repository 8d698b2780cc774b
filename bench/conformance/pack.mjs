// Packs the ONNX node-test cases the interpreter passes into a folder the GPU machine can carry
// (default .gpu-work/conformance: cases/<name>/ + manifest.json, and .gpu-work/conformance.tar.xz to
// carry), compiling each here on the CPU
// (in memory, no nvcc) and printing how many compile. With --nvcc, also writes every compiling
// case's plan with nvcc (the fatbin build), two at a time, and counts those.
// Usage: node bench/conformance/pack.mjs [outDir] [--filter S] [--nvcc] [--quiet]
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import os from 'node:os';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const args = process.argv.slice(2);
const flag = (f) => args.includes(f);
const opt = (f) => (args.includes(f) ? args[args.indexOf(f) + 1] : undefined);
const outDir = path.resolve(args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--filter') ?? path.join(root, '.gpu-work/conformance'));
const alias = {};
for (const p of ['ir', 'passes', 'codegen-cuda', 'compiler', 'runtime']) alias[`@paradit/${p}`] = path.join(root, `packages/${p}/src/index.ts`);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-conf-'));
const outfile = path.join(tmp, 'cases.cjs');
await build({ entryPoints: [path.join(here, 'cases.ts')], outfile, bundle: true, platform: 'node', target: 'node20', format: 'cjs', alias, external: ['koffi', 'onnxruntime-node'], logLevel: 'warning' });
const { pack } = await import(outfile);
fs.mkdirSync(outDir, { recursive: true });
const t0 = Date.now();
const r = pack(outDir, opt('--filter') ?? '', flag('--quiet') ? () => {} : (s) => console.log(s));
const ok = r.cases.filter((c) => !c.compileError);
const frozen = r.cases.filter((c) => c.frozen.length > 0);
console.log(`\n${r.total} node-test cases; the interpreter passes ${r.interpreterPasses}`);
console.log(`CPU compile to a CUDA plan (in memory): ${ok.length}/${r.interpreterPasses} (${((100 * ok.length) / Math.max(1, r.interpreterPasses)).toFixed(1)}%), ${frozen.length} with shape operands frozen from the test data (${frozen.filter((c) => !c.compileError).length} of those compile)`);
const reasons = new Map();
for (const c of r.cases.filter((c) => c.compileError)) {
  const key = c.compileError.replace(/'[^']*'/g, "'…'").replace(/\[[^\]]*\]/g, '[…]').slice(0, 110);
  reasons.set(key, [...(reasons.get(key) ?? []), c.name]);
}
for (const [k, v] of [...reasons].sort((a, b) => b[1].length - a[1].length)) console.log(`  ${String(v.length).padStart(3)} x ${k}  (e.g. ${v[0]})`);
if (flag('--nvcc')) {
  // The full `paradit compile` (plan files, nvcc fatbin) of every case that compiled in memory.
  const cli = path.join(root, 'packages/cli/dist/paradit.cjs');
  if (!fs.existsSync(cli)) execFileSync('node', [path.join(root, 'scripts/build.mjs')], { stdio: 'inherit' });
  const queue = [...ok];
  const fails = [];
  let done = 0;
  const one = (c) => new Promise((res) => {
    const plan = path.join(tmp, 'plans', c.name);
    const dtype = c.dtype;
    const p = spawn('node', [cli, 'compile', path.join(outDir, 'cases', c.name), '-o', plan, '--target', 'cuda', '--dtype', dtype, '--no-progress'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => {
      done++;
      if (code !== 0) fails.push({ name: c.name, err: err.trim().split('\n')[0].slice(0, 200) });
      fs.rmSync(plan, { recursive: true, force: true });
      res();
    });
  });
  const worker = async () => { while (queue.length) await one(queue.shift()); };
  await Promise.all([worker(), worker()]);
  console.log(`\nparadit compile with nvcc (fatbin): ${done - fails.length}/${done} of the in-memory compiles`);
  for (const f of fails) console.log(`  FAIL ${f.name}: ${f.err}`);
  fs.writeFileSync(path.join(outDir, 'nvcc.json'), JSON.stringify({ compiled: done - fails.length, of: done, fails }, null, 1));
}
// What the GPU call carries: one xz tarball beside the folder (~1 MB; the folder is ~8 MB of small files).
const tarball = `${outDir}.tar.xz`;
execFileSync('sh', ['-c', `tar cf - -C "${outDir}" cases manifest.json | xz -T2 -6 > "${tarball}"`]);
const apparent = execFileSync('du', ['-sh', '--apparent-size', outDir]).toString().split('\t')[0];
console.log(`packed into ${outDir} (${apparent}) and ${tarball} (${(fs.statSync(tarball).size / 2 ** 20).toFixed(1)} MiB) in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
fs.rmSync(tmp, { recursive: true, force: true });
