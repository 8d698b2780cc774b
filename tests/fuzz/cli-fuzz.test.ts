/**
 * Fuzzing the CLI's promises (issue 14): seeded, deterministic cases through the bundled CLI as a
 * subprocess — truncated and byte-flipped model files, semantic protobuf edits, bad test data, bad
 * meshes, tampered plans, bad output paths and signals during a compile. For every case:
 *   - the exit code is one the case allows: 0/1 (it ran), 2 (bad input), 128+N (killed by a
 *     signal); never 3 (a bug in ParaDiT) and never a crash without a code;
 *   - stderr holds no stack trace (no --debug), and an exit 2 starts with `paradit: error: `;
 *   - nothing is left behind: no `.NAME.tmp-*` folder beside an output, no parent folder a failed
 *     compile made, nothing in the case's private TMPDIR.
 * Cases run CONCURRENCY at a time; a failure lists the case, its command and its stderr.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mulberry32 } from '@paradit/ir';
import { decodeModel, encodeModel } from '../../packages/ir/src/onnx/proto';
import type { ModelP } from '../../packages/ir/src/onnx/proto';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { CLI, ensureCli, removeTempDirs, tempDir, withoutProgress, writeModelDir } from '../cli/cli-helpers';
import { REPO_ROOT } from '../fixtures';

const CONCURRENCY = Math.max(2, Math.min(6, os.cpus().length + 1));
const CFG = { ...TINY_DIT, blocks: 1 };

interface Case {
  readonly name: string;
  readonly args: readonly string[];
  /** Exit codes this case may end with (signals: 128 + N). */
  readonly allowed: readonly number[];
  /** Folders that must hold no `.tmp-` entries afterwards, and paths that must not exist. */
  readonly noDebrisIn?: readonly string[];
  readonly mustNotExist?: readonly string[];
  /** Send this signal once the run has gone for `afterMs`. */
  readonly signal?: { readonly sig: NodeJS.Signals; readonly afterMs: number };
}

interface Outcome {
  readonly c: Case;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
  readonly problems: string[];
}

function runCase(c: Case): Promise<Outcome> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-fuzz-tmp-'));
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...c.args], { cwd: REPO_ROOT, env: { ...process.env, TMPDIR: tmp, PARADIT_INJECT_FAULT: '' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
    const sigTimer = c.signal ? setTimeout(() => p.kill(c.signal!.sig), c.signal.afterMs) : undefined;
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (sigTimer) clearTimeout(sigTimer);
      const problems: string[] = [];
      const exit = code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : -1);
      if (!c.allowed.includes(exit)) problems.push(`exit ${exit} (allowed: ${c.allowed.join(', ')})`);
      if (exit === 3) problems.push('exit 3: reported as a bug in ParaDiT');
      if (/^\s+at .+:\d+:\d+\)?$/m.test(stderr)) problems.push('a stack trace without --debug');
      if (exit === 2 && !withoutProgress(stderr).startsWith('paradit: error: ')) problems.push('exit 2 without a `paradit: error:` paragraph');
      for (const d of c.noDebrisIn ?? []) {
        const left = fs.existsSync(d) ? fs.readdirSync(d).filter((e) => e.includes('.tmp-')) : [];
        if (left.length) problems.push(`left ${left.join(', ')} in ${d}`);
      }
      for (const f of c.mustNotExist ?? []) if (fs.existsSync(f)) problems.push(`left ${f}`);
      const inTmp = fs.readdirSync(tmp);
      if (inTmp.length) problems.push(`left ${inTmp.join(', ')} in TMPDIR`);
      fs.rmSync(tmp, { recursive: true, force: true });
      resolve({ c, code, signal, stderr, problems });
    });
  });
}

async function runAll(cases: readonly Case[]): Promise<Outcome[]> {
  const out: Outcome[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < cases.length) {
      const c = cases[next++]!;
      out.push(await runCase(c));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return out;
}

// ---------------------------------------------------------------- case generators

const RAN = [0, 1, 2];

/** A folder holding `modelBytes` as model.onnx plus the good test data (and weights, if external). */
function variantModel(base: string, tag: string, modelBytes: Uint8Array): string {
  const dir = tempDir(`fz-${tag}`);
  fs.writeFileSync(path.join(dir, 'model.onnx'), modelBytes);
  for (const e of fs.readdirSync(base)) if (e !== 'model.onnx') fs.cpSync(path.join(base, e), path.join(dir, e), { recursive: true });
  return dir;
}

function truncations(base: string, bytes: Uint8Array, r: () => number, n: number): Case[] {
  return Array.from({ length: n }, (_, i) => {
    const at = i === 0 ? 0 : Math.floor(r() * bytes.length);
    const dir = variantModel(base, `trunc${i}`, bytes.subarray(0, at));
    return { name: `truncate model.onnx at ${at}/${bytes.length}`, args: i % 3 === 0 ? ['check', dir] : ['inspect', dir, '--raw'], allowed: [2] };
  });
}

function byteFlips(base: string, bytes: Uint8Array, r: () => number, n: number): Case[] {
  return Array.from({ length: n }, (_, i) => {
    const b = Uint8Array.from(bytes);
    const flips = 1 + Math.floor(r() * 4);
    const where: number[] = [];
    for (let k = 0; k < flips; k++) {
      const at = Math.floor(r() * b.length);
      b[at] = b[at]! ^ (1 << Math.floor(r() * 8));
      where.push(at);
    }
    const dir = variantModel(base, `flip${i}`, b);
    return { name: `flip bits of model.onnx at ${where.join(',')}`, args: [['inspect', dir, '--raw'], ['inspect', dir], ['check', dir]][i % 3]!, allowed: RAN };
  });
}

/** Semantic edits of the decoded model: each returns a description, or undefined when it does not apply. */
const EDITS: ((m: ModelP, r: () => number) => string | undefined)[] = [
  (m, r) => {
    const n = pick(m.graph?.node ?? [], r);
    if (!n) return undefined;
    n.opType = pick(['Conv', 'Foo', 'Gemm', 'Softmax', 'Reshape', 'LayerNormalization', 'Unknown'], r)!;
    return `node '${n.name}' becomes ${n.opType}`;
  },
  (m, r) => {
    const n = pick(m.graph?.node ?? [], r);
    if (!n || !n.input?.length) return undefined;
    n.input[0] = 'no_such_value';
    return `node '${n.name}' reads an undefined value`;
  },
  (m, r) => {
    const n = pick(m.graph?.node ?? [], r);
    if (!n) return undefined;
    n.input = [];
    return `node '${n.name}' loses its inputs`;
  },
  (m, r) => {
    const n = pick(m.graph?.node ?? [], r);
    const a = n && pick(n.attribute ?? [], r);
    if (!a) return undefined;
    if (a.ints?.length) a.ints = a.ints.map(() => Math.floor(r() * 7) - 3);
    else if (a.i !== undefined && a.i !== null) a.i = Math.floor(r() * 11) - 5;
    else if (a.f !== undefined && a.f !== null) a.f = [NaN, -1, 0, 1e30][Math.floor(r() * 4)]!;
    else return undefined;
    return `attribute '${a.name}' of '${n.name}' changed`;
  },
  (m, r) => {
    const t = pick(m.graph?.initializer ?? [], r);
    if (!t || !t.dims?.length) return undefined;
    t.dims = t.dims.map((d) => Number(d) + (r() < 0.5 ? 1 : 0));
    return `initializer '${t.name}' dims changed`;
  },
  (m, r) => {
    const t = pick(m.graph?.initializer ?? [], r);
    if (!t) return undefined;
    t.dataType = pick([0, 8, 99, 11, 7, 16], r)!;
    return `initializer '${t.name}' dataType ${t.dataType}`;
  },
  (m, r) => {
    const v = pick(m.graph?.input ?? [], r);
    const dims = v?.type?.tensorType?.shape?.dim;
    if (!dims?.length) return undefined;
    dims[Math.floor(r() * dims.length)] = { dimValue: Math.floor(r() * 5) };
    return `input '${v!.name}' declares another dim`;
  },
  (m, r) => {
    const v = pick(m.graph?.output ?? [], r);
    if (!v) return undefined;
    v.name = 'not_computed_anywhere';
    return 'an output computed nowhere';
  },
  (m, r) => {
    const nodes = m.graph?.node ?? [];
    if (nodes.length < 2) return undefined;
    const i = Math.floor(r() * nodes.length);
    const j = Math.floor(r() * nodes.length);
    [nodes[i], nodes[j]] = [nodes[j]!, nodes[i]!];
    return `nodes ${i} and ${j} swapped (topological order broken)`;
  },
  (m, r) => {
    const n = pick(m.graph?.node ?? [], r);
    const o = pick(m.graph?.node ?? [], r);
    if (!n?.output?.length || !o?.output?.length || n === o) return undefined;
    o.output[0] = n.output[0]!;
    return 'a value defined twice';
  },
  (m) => {
    m.opsetImport = [{ domain: '', version: 3 }];
    return 'opset 3';
  },
  (m) => {
    m.irVersion = 99;
    return 'IR version 99';
  },
];

function pick<T>(xs: readonly T[], r: () => number): T | undefined {
  return xs.length ? xs[Math.floor(r() * xs.length)] : undefined;
}

function semanticEdits(base: string, bytes: Uint8Array, r: () => number, n: number): Case[] {
  const out: Case[] = [];
  for (let i = 0; out.length < n && i < n * 4; i++) {
    const m = decodeModel(bytes, 'model.onnx');
    const what = EDITS[i % EDITS.length]!(m, r);
    if (!what) continue;
    const dir = variantModel(base, `edit${i}`, encodeModel(m));
    out.push({ name: `edit: ${what}`, args: [i % 2 ? 'check' : 'inspect', dir], allowed: RAN });
  }
  return out;
}

function badTestData(base: string, r: () => number, n: number): Case[] {
  const out: Case[] = [];
  for (let i = 0; i < n; i++) {
    const dir = tempDir(`fz-data${i}`);
    fs.cpSync(base, dir, { recursive: true });
    const set = path.join(dir, 'test_data_set_0');
    const files = fs.readdirSync(set).sort();
    const f = path.join(set, files[i % files.length]!);
    const kind = i % 5;
    let what: string;
    if (kind === 0) {
      fs.rmSync(f);
      what = `removed ${path.basename(f)}`;
    } else if (kind === 1) {
      const b = fs.readFileSync(f);
      fs.writeFileSync(f, b.subarray(0, Math.floor(r() * b.length)));
      what = `truncated ${path.basename(f)}`;
    } else if (kind === 2) {
      const b = fs.readFileSync(f);
      for (let k = 0; k < 3; k++) {
        const at = Math.floor(r() * b.length);
        b[at] = b[at]! ^ 0xff;
      }
      fs.writeFileSync(f, b);
      what = `flipped bytes of ${path.basename(f)}`;
    } else if (kind === 3) {
      fs.writeFileSync(f, 'not a tensor');
      what = `${path.basename(f)} is text`;
    } else {
      fs.copyFileSync(path.join(set, files[(i + 1) % files.length]!), f);
      what = `${path.basename(f)} replaced by another file`;
    }
    out.push({ name: `test data: ${what}`, args: ['check', dir], allowed: RAN });
  }
  return out;
}

function badMeshes(model: string): Case[] {
  const vals = ['0', '-1', 'two', '1.5', '3', '5', '1000', '', '2'];
  const out: Case[] = [];
  for (const flag of ['--ulysses', '--ring', '--cfg']) {
    for (const v of vals) out.push({ name: `check ${flag} '${v}'`, args: ['check', model, flag, v], allowed: RAN });
  }
  out.push({ name: 'inspect --ulysses 3 --ring 7', args: ['inspect', model, '--ulysses', '3', '--ring', '7'], allowed: RAN });
  out.push({ name: 'inspect --cfg 4', args: ['inspect', model, '--cfg', '4'], allowed: RAN });
  return out;
}

function tamperedPlans(plan: string, model: string, r: () => number, n: number): Case[] {
  const out: Case[] = [];
  const files = ['plan.json', 'plan.json', 'plan.json', 'weights.bin', 'kernels/module.cu'];
  for (let i = 0; i < n; i++) {
    const dir = path.join(tempDir(`fz-plan${i}`), 'plan');
    fs.cpSync(plan, dir, { recursive: true });
    const rel = files[i % files.length]!;
    const f = path.join(dir, rel);
    const b = fs.readFileSync(f);
    let what: string;
    if (rel === 'plan.json' && i % 2 === 0) {
      // A semantic edit: one number of plan.json nudged.
      const text = b.toString('utf8');
      const nums = [...text.matchAll(/(?<=[:,[])-?\d+(?=[,}\]])/g)];
      const m = nums[Math.floor(r() * nums.length)]!;
      const v = Number(m[0]) + [1, -1, 7, 1000][Math.floor(r() * 4)]!;
      fs.writeFileSync(f, text.slice(0, m.index) + String(v) + text.slice(m.index! + m[0].length));
      what = `plan.json number at ${m.index} -> ${v}`;
    } else if (r() < 0.2) {
      fs.writeFileSync(f, b.subarray(0, Math.floor(r() * b.length)));
      what = `${rel} truncated`;
    } else {
      const at = Math.floor(r() * b.length);
      b[at] = b[at]! ^ (1 << Math.floor(r() * 8));
      fs.writeFileSync(f, b);
      what = `${rel} bit flip at ${at}`;
    }
    out.push({ name: `plan: ${what}`, args: ['run', dir, '--inputs', model, '--compare'], allowed: RAN });
  }
  return out;
}

function badOutputs(model: string): Case[] {
  const d = tempDir('fz-out');
  fs.writeFileSync(path.join(d, 'file'), 'x');
  fs.mkdirSync(path.join(d, 'foreign'));
  fs.writeFileSync(path.join(d, 'foreign', 'plan.json'), '{"format": "other"}');
  fs.writeFileSync(path.join(d, 'foreign', 'keep.txt'), 'keep');
  fs.mkdirSync(path.join(d, 'full'));
  fs.writeFileSync(path.join(d, 'full', 'a'), 'a');
  const bad = ['', ' ', path.join(d, 'file'), path.join(d, 'file', 'plan'), path.join(d, 'file', 'a', 'b'), path.join(d, 'foreign'), path.join(d, 'full'), '/proc/self/plan', '/dev/null', '/dev/null/plan'];
  const out: Case[] = bad.map((o) => ({ name: `compile -o '${o}'`, args: ['compile', model, '-o', o, '--no-nvcc'], allowed: [2], noDebrisIn: [d] }));
  out.push({ name: 'run --save into a file', args: ['run', path.join(d, 'nope'), '--inputs', model, '--save', path.join(d, 'file')], allowed: [2] });
  // A compile into new parents that fails (unknown --shape name) leaves no parents.
  out.push({ name: 'failed compile into new parents', args: ['compile', model, '-o', path.join(d, 'n1', 'n2', 'plan'), '--no-nvcc', '--shape', 'nope=1'], allowed: [2], mustNotExist: [path.join(d, 'n1')] });
  out.push({ name: 'inspect --dot into a missing folder', args: ['inspect', model, '--dot', path.join(d, 'missing', 'x.dot')], allowed: [2], noDebrisIn: [d] });
  return out;
}

function signals(model: string, r: () => number, n: number): Case[] {
  return Array.from({ length: n }, (_, i) => {
    const parent = tempDir(`fz-sig${i}`);
    const sig = (['SIGINT', 'SIGTERM'] as const)[i % 2]!;
    return {
      name: `${sig} during a compile after ${Math.round(200 + r() * 1200)} ms`,
      args: ['compile', model, '-o', path.join(parent, 'new', 'plan'), '--no-nvcc', '--dtype', 'fp32'],
      allowed: [0, 128 + os.constants.signals[sig]],
      noDebrisIn: [parent, path.join(parent, 'new')],
      signal: { sig, afterMs: Math.round(200 + r() * 1200) },
    };
  });
}

// ---------------------------------------------------------------- the run

let cases: Case[] = [];
let outcomes: Outcome[] = [];

beforeAll(async () => {
  ensureCli();
  const base = writeModelDir(buildTinyDit(CFG), tinyDitInputs(CFG), 'fz-base');
  const ext = writeModelDir(buildTinyDit(CFG), tinyDitInputs(CFG), 'fz-ext', true);
  const bytes = new Uint8Array(fs.readFileSync(path.join(base, 'model.onnx')));
  const extBytes = new Uint8Array(fs.readFileSync(path.join(ext, 'model.onnx')));
  const plan = path.join(tempDir('fz-good-plan'), 'plan');
  await new Promise<void>((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, 'compile', base, '-o', plan, '--no-nvcc', '--dtype', 'fp32', '--no-progress'], { stdio: 'ignore' });
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`compile of the fuzz plan failed (${code})`))));
  });
  const r = mulberry32(14); // seeded: every run makes the same cases
  cases = [
    ...truncations(base, bytes, r, 20),
    ...truncations(ext, extBytes, r, 10),
    ...byteFlips(base, bytes, r, 40),
    ...byteFlips(ext, extBytes, r, 20),
    ...semanticEdits(base, bytes, r, 40),
    ...badTestData(base, r, 25),
    ...badMeshes(base),
    ...tamperedPlans(plan, base, r, 55),
    ...badOutputs(base),
    ...signals(base, r, 6),
  ];
  const t0 = performance.now();
  outcomes = await runAll(cases);
  const codes = new Map<string, number>();
  for (const o of outcomes) {
    const k = o.signal ? o.signal : String(o.code);
    codes.set(k, (codes.get(k) ?? 0) + 1);
  }
  const hist = [...codes].sort().map(([k, n]) => `${k}: ${n}`).join(', ');
  process.stderr.write(`paradit tests: cli-fuzz: ${cases.length} cases in ${((performance.now() - t0) / 1000).toFixed(1)} s (${CONCURRENCY} at a time); exits ${hist}\n`);
}, 600_000);
afterAll(() => removeTempDirs());

test('at least 250 cases', () => {
  expect(cases.length).toBeGreaterThanOrEqual(250);
  expect(outcomes).toHaveLength(cases.length);
});

test('every case keeps the promises (exit 2 for bad input, never 3, no stack trace, nothing left behind)', () => {
  const bad = outcomes.filter((o) => o.problems.length > 0);
  const report = bad.slice(0, 15).map((o) => `- ${o.c.name}: ${o.problems.join('; ')}\n    paradit ${o.c.args.join(' ')}\n    ${o.stderr.trim().split('\n').slice(0, 4).join('\n    ')}`);
  expect(report).toEqual([]);
});

test('the bad-input classes really were refused (exit 2), not silently accepted', () => {
  const byPrefix = (p: string) => outcomes.filter((o) => o.c.name.startsWith(p));
  for (const p of ['truncate', 'compile -o']) expect(byPrefix(p).every((o) => o.code === 2)).toBe(true);
  // Most byte flips of weights.bin and module.cu are caught by their checksums.
  const sums = outcomes.filter((o) => /plan: (weights\.bin|kernels\/module\.cu) bit flip/.test(o.c.name));
  expect(sums.length).toBeGreaterThan(0);
  expect(sums.every((o) => o.code === 2)).toBe(true);
});
