/**
 * Issue 14 items 3 and 4: bad output paths are user errors found before any compile work (exit 2
 * naming the path and a fix), file system errors from writes map to exit 2, a failed or
 * interrupted compile leaves nothing behind (no hidden .NAME.tmp-* folder, no parent folders it
 * made, no nvcc process), and -o replaces only a folder that really is a ParaDiT plan.
 * nvcc is a stand-in script on PATH (it records its pid and its child's, then sleeps or fails).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fsUserError } from '../../packages/cli/src/errors';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { CLI, ensureCli, expectBug, expectUserError, removeTempDirs, runCli, tempDir, writeModelDir } from './cli-helpers';
import { REPO_ROOT } from '../fixtures';

const CFG = { ...TINY_DIT, blocks: 1 };
let model: string;

beforeAll(() => {
  ensureCli();
  model = writeModelDir(buildTinyDit(CFG), tinyDitInputs(CFG), 'out-model');
});
afterAll(() => removeTempDirs());

const compile = (out: string, ...more: string[]) => runCli(['compile', model, '-o', out, '--no-nvcc', '--dtype', 'fp32', ...more]);

/** Everything under `dir`, relative, sorted (hidden entries included). */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      out.push(path.join(rel, e.name));
      if (e.isDirectory()) walk(path.join(d, e.name), path.join(rel, e.name));
    }
  };
  walk(dir, '');
  return out.sort();
}

describe('-o is checked before compiling', () => {
  test("-o '' is refused at once", () => {
    const r = compile('');
    expect(expectUserError(r)).toBe("-o '': the output path is empty; pass the plan folder to write, e.g. -o plans/flux");
  });

  test('-o under a file, and -o naming a file', () => {
    const d = tempDir('under-file');
    fs.writeFileSync(path.join(d, 'f'), 'x');
    expect(expectUserError(compile(path.join(d, 'f', 'plan')))).toMatch(/f is a file, so no folder can be made under it; choose a path whose parents are folders$/);
    expect(expectUserError(compile(path.join(d, 'f')))).toMatch(/: it is a file, not a plan folder; choose another -o path or remove the file$/);
    expect(tree(d)).toEqual(['f']);
  });

  (process.getuid?.() === 0 ? test.skip : test)('an unwritable parent (skipped as root: root may write anywhere)', () => {
    const d = tempDir('ro');
    fs.chmodSync(d, 0o555);
    try {
      expect(expectUserError(compile(path.join(d, 'plan')))).toMatch(/is not writable \(permission denied\)/);
    } finally {
      fs.chmodSync(d, 0o755);
    }
  });

  test('a folder holding a foreign plan.json and other files is not replaced', () => {
    const d = tempDir('foreign');
    fs.writeFileSync(path.join(d, 'plan.json'), '{"my": "notes"}');
    fs.writeFileSync(path.join(d, 'thesis.tex'), 'precious');
    expect(expectUserError(compile(d))).toMatch(/it exists and is not a plan directory that may be replaced: its plan\.json has format undefined, not 'paradit-plan'; choose another -o path/);
    expect(tree(d)).toEqual(['plan.json', 'thesis.tex']);
    const e = tempDir('other');
    fs.writeFileSync(path.join(e, 'a.txt'), 'x');
    expect(expectUserError(compile(e))).toMatch(/is not a plan directory that may be replaced: a folder of 1 entries without plan\.json;/);
  });

  test('a ParaDiT plan is replaced; one holding other files is not', () => {
    const out = path.join(tempDir('replace'), 'plan');
    expect(compile(out).code).toBe(0);
    const before = fs.statSync(path.join(out, 'plan.json')).mtimeMs;
    expect(compile(out).code).toBe(0);
    expect(fs.readdirSync(out).sort()).toEqual(['kernels', 'plan.json', 'weights.bin']);
    expect(fs.statSync(path.join(out, 'plan.json')).mtimeMs).toBeGreaterThanOrEqual(before);
    fs.writeFileSync(path.join(out, 'notes.txt'), 'mine');
    expect(expectUserError(compile(out))).toMatch(/replaced: a ParaDiT plan that also holds notes\.txt, which replacing it would delete/);
    expect(fs.readFileSync(path.join(out, 'notes.txt'), 'utf8')).toBe('mine');
    expect(tree(path.dirname(out)).filter((p) => p.includes('.tmp-'))).toEqual([]);
  });

  test('missing parents are made, and removed again when the compile fails', () => {
    const d = tempDir('parents');
    expect(compile(path.join(d, 'a', 'b', 'plan')).code).toBe(0);
    expect(fs.existsSync(path.join(d, 'a', 'b', 'plan', 'plan.json'))).toBe(true);
    // A failure while writing (nvcc rejects the generated CUDA: a bug, exit 3) leaves no parents.
    const bin = fakeNvcc('fail');
    const r = runCli(['compile', model, '-o', path.join(d, 'x', 'y', 'plan'), '--dtype', 'fp32'], { PATH: `${bin}:${process.env['PATH']}` });
    expect(expectBug(r)).toMatch(/^nvcc failed on kernels\/module\.cu \(exit 1\): stand-in nvcc says no; the generated CUDA does not compile/);
    expect(tree(d).filter((p) => !p.startsWith('a'))).toEqual([]);
  });
});

describe('run --save and file system errors', () => {
  test('run --save into a file is refused before the step', () => {
    const out = path.join(tempDir('save'), 'plan');
    expect(compile(out).code).toBe(0);
    const f = path.join(path.dirname(out), 'file.txt');
    fs.writeFileSync(f, 'x');
    expect(expectUserError(runCli(['run', out, '--inputs', model, '--save', f]))).toMatch(/^--save .*file\.txt: it is a file, not a folder; pass a folder/);
    expect(expectUserError(runCli(['run', out, '--inputs', model, '--save', path.join(f, 'sub')]))).toMatch(/file\.txt is a file, not a folder/);
  });

  test('errno codes become one paragraph naming the path (ENOSPC names the -o it was writing)', () => {
    const err = (code: string, extra: Record<string, string> = {}) => Object.assign(new Error(`${code}: x`), { code, ...extra });
    expect(fsUserError(err('ENOSPC', { syscall: 'write' }), '-o /data/plan')?.message).toBe('-o /data/plan: write failed, no space left on the device (ENOSPC); free some disk space or write to another disk');
    expect(fsUserError(err('EACCES', { syscall: 'open', path: '/x/y' }))?.message).toBe('/x/y: open failed, permission denied (EACCES); choose a path you may write (or read), or change its permissions');
    expect(fsUserError(err('ENOTDIR', { syscall: 'mkdir', path: '/f/p' }), '--save /f/p')?.message).toBe('--save /f/p: mkdir failed, a part of the path is a file, not a folder (ENOTDIR); choose a path whose parents are folders');
    expect(fsUserError(new TypeError('x'))).toBeUndefined();
  });
});

/** A stand-in nvcc: 'fail' exits 1; 'hang' records its pid and a child's pid, then waits. */
function fakeNvcc(mode: 'fail' | 'hang', pidFile = ''): string {
  const bin = tempDir(`nvcc-${mode}`);
  const body =
    mode === 'fail'
      ? '#!/bin/sh\necho "stand-in nvcc says no" >&2\nexit 1\n'
      : `#!/bin/sh\nsleep 120 &\necho "$$ $!" > '${pidFile}.part' && mv '${pidFile}.part' '${pidFile}'\nwait\n`;
  fs.writeFileSync(path.join(bin, 'nvcc'), body, { mode: 0o755 });
  return bin;
}

/** Running (a zombie left to an init that does not reap counts as ended: it was killed). */
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return true;
  }
};

describe('signals during a compile', () => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    test(`${sig} while nvcc runs removes the temporary folder and kills nvcc and its children`, async () => {
      const d = tempDir(`sig-${sig}`);
      const pidFile = path.join(tempDir('pids'), 'pids');
      const bin = fakeNvcc('hang', pidFile);
      const child = spawn(process.execPath, [CLI, 'compile', model, '-o', path.join(d, 'new', 'plan'), '--dtype', 'fp32'], {
        cwd: REPO_ROOT,
        env: { ...process.env, PATH: `${bin}:${process.env['PATH']}` },
        stdio: 'ignore',
      });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
      const deadline = Date.now() + 30_000;
      while (!fs.existsSync(pidFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(fs.existsSync(pidFile)).toBe(true);
      const pids = fs.readFileSync(pidFile, 'utf8').trim().split(' ').map(Number);
      expect(tree(d).some((p) => p.includes('.plan.tmp-'))).toBe(true); // the work folder exists now
      child.kill(sig);
      const end = await exited;
      expect(end).toEqual({ code: null, signal: sig }); // killed by the signal, as the shell expects
      await new Promise((r) => setTimeout(r, 200));
      expect(tree(d)).toEqual([]); // no .plan.tmp-*, and not the 'new' folder it made
      for (const p of pids) expect(alive(p)).toBe(false);
    }, 60_000);
  }
});
