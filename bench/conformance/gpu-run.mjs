// On the GPU machine (no dependencies besides node and .gpu/paradit.cjs): runs every packed
// node-test case with `paradit check CASE --backend cuda --json` (its compile included), JOBS at
// a time, and prints pass/fail per case with the reason, the pass percentage against the
// interpreter's passes, and per-op counts. Writes OUT/conformance-gpu.json (and a .log).
// Usage: node bench/conformance/gpu-run.mjs [packDir] [--jobs N] [--shard i/n] [--timeout S] [--backend cuda|cpu]
import { spawn, execSync } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';

const args = process.argv.slice(2);
const opt = (f, d) => (args.includes(f) ? args[args.indexOf(f) + 1] : d);
const dir = path.resolve(args.find((a, i) => !a.startsWith('--') && !(args[i - 1] ?? '').startsWith('--')) ?? '.gpu-work/conformance');
const jobs = Number(opt('--jobs', '8'));
const [si, sn] = opt('--shard', '0/1').split('/').map(Number);
const timeout = Number(opt('--timeout', '240'));
const backend = opt('--backend', 'cuda');
const cli = opt('--cli', fs.existsSync('.gpu/paradit.cjs') ? '.gpu/paradit.cjs' : 'packages/cli/dist/paradit.cjs');
const out = process.env.OUT ?? '/tmp/paradit-conformance';
fs.mkdirSync(out, { recursive: true });
const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
const all = manifest.cases;
const mine = all.filter((_, k) => k % sn === si);
let card = 'unknown';
try {
  card = execSync('nvidia-smi --query-gpu=name --format=csv,noheader', { encoding: 'utf8' }).split('\n')[0].trim();
} catch { /* no GPU: --backend cpu dry run */ }
const log = fs.createWriteStream(path.join(out, `conformance-gpu-${si}of${sn}.log`));
const results = [];
const runOne = (c) => new Promise((res) => {
  if (c.compileError) {
    results.push({ name: c.name, ok: false, reason: `compile (CPU-side, before the GPU): ${c.compileError}` });
    return res();
  }
  const t0 = Date.now();
  const p = spawn('node', [cli, 'check', path.join(dir, 'cases', c.name), '--backend', backend, '--dtype', c.dtype, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let so = '';
  let se = '';
  const timer = setTimeout(() => p.kill('SIGKILL'), timeout * 1000);
  p.stdout.on('data', (d) => (so += d));
  p.stderr.on('data', (d) => (se += d));
  p.on('close', (code) => {
    clearTimeout(timer);
    let reason = '';
    let ok = code === 0;
    try {
      const j = JSON.parse(so);
      const bad = (j.checks ?? []).filter((x) => !x.ok);
      if (bad.length) reason = bad.map((x) => `${x.output}: rel L2 ${x.relL2} > ${x.tolerance}`).join('; ');
      ok = ok && j.ok !== false;
    } catch {
      reason = (se.trim().split('\n').find((l) => l.includes('error')) ?? se.trim().split('\n')[0] ?? `exit ${code}`).slice(0, 300);
    }
    if (code === null) reason = `timed out after ${timeout} s`;
    else if (!ok && !reason) reason = `exit ${code}`;
    results.push({ name: c.name, ok, reason, seconds: (Date.now() - t0) / 1000 });
    log.write(`${ok ? 'PASS' : 'FAIL'} ${c.name}${reason ? `: ${reason}` : ''}\n${ok ? '' : se.slice(0, 2000)}\n`);
    res();
  });
});
const queue = [...mine];
const t0 = Date.now();
await Promise.all(Array.from({ length: jobs }, async () => { while (queue.length) await runOne(queue.shift()); }));
results.sort((a, b) => a.name.localeCompare(b.name));
for (const r of results) console.log(`${r.ok ? 'PASS' : 'FAIL'} ${r.name}${r.ok ? '' : `: ${r.reason}`}`);
const pass = results.filter((r) => r.ok).length;
const byName = new Map(all.map((c) => [c.name, c]));
const perOp = {};
for (const r of results) for (const op of byName.get(r.name).ops) {
  const e = (perOp[op] ??= { cases: 0, pass: 0 });
  e.cases++;
  if (r.ok) e.pass++;
}
console.log(`\ncard: ${card}; backend ${backend}; shard ${si}/${sn}: ${mine.length} of ${all.length} packed cases (the interpreter passes ${manifest.interpreterPasses} of ${manifest.total})`);
console.log(`PASS ${pass}/${results.length} (${((100 * pass) / Math.max(1, results.length)).toFixed(1)}%) in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
fs.writeFileSync(path.join(out, `conformance-gpu-${si}of${sn}.json`), JSON.stringify({ card, backend, shard: [si, sn], pass, of: results.length, results, perOp }, null, 1));
