/**
 * Helpers of the CLI subprocess tests: the bundled CLI (built once with `node scripts/build.mjs`
 * when missing or older than any source file, under a lock so parallel test files build it once),
 * a runner that returns exit code and output, and model folders written by the ONNX exporter.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Module, Tensor, interpret, saveModel, writeTensorFile } from '@paradit/ir';
import { REPO_ROOT } from '../fixtures';

export const CLI = path.join(REPO_ROOT, 'packages/cli/dist/paradit.cjs');
const LOCK = path.join(REPO_ROOT, 'packages/cli/dist/.build-lock');

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

function isFresh(): boolean {
  if (!fs.existsSync(CLI)) return false;
  const built = fs.statSync(CLI).mtimeMs;
  const pkgs = path.join(REPO_ROOT, 'packages');
  return fs.readdirSync(pkgs).every((p) => {
    const src = path.join(pkgs, p, 'src');
    return !fs.existsSync(src) || newestSource(src) <= built;
  });
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Builds the CLI bundle unless it is fresh; one builder at a time (a lock directory). */
export function ensureCli(): void {
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (isFresh()) return;
    fs.mkdirSync(path.dirname(LOCK), { recursive: true });
    try {
      fs.mkdirSync(LOCK);
    } catch {
      // Another test file is building it; a lock older than two minutes was left by a crash.
      if (fs.existsSync(LOCK) && Date.now() - fs.statSync(LOCK).mtimeMs > 120_000) fs.rmSync(LOCK, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${LOCK}`);
      sleep(200);
      continue;
    }
    try {
      const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts/build.mjs')], { cwd: REPO_ROOT, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`node scripts/build.mjs failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
      return;
    } finally {
      fs.rmSync(LOCK, { recursive: true, force: true });
    }
  }
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runCli(args: readonly string[], env: Record<string, string> = {}, cwd = REPO_ROOT): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * A bug in ParaDiT: exit 3, `paradit: internal error: this is a bug in ParaDiT...` and a hint to
 * rerun with --debug, with no stack trace (unless `debug`); returns the first line's message.
 */
export function expectBug(r: CliResult, debug = false): string {
  if (r.code !== 3) throw new Error(`expected exit 3, got ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const err = withoutProgress(r.stderr).trimEnd();
  expect(err).toMatch(/^paradit: internal error: this is a bug in ParaDiT/);
  if (debug) expect(err).toMatch(/^\s+at /m);
  else {
    expect(err).not.toMatch(/^\s+at /m);
    expect(err).toMatch(/rerun with --debug/);
  }
  return err.split('\n')[0]!.replace(/^paradit: internal error: this is a bug in ParaDiT[^:]*: /, '');
}

/** Progress lines (`paradit: compile: lower (1.2 s)`, printed when stderr is not a terminal) are not part of an error. */
export const PROGRESS_LINE = /^paradit: compile: [a-z-]+ \(\d+\.\d s\)\n/gm;

export function withoutProgress(stderr: string): string {
  return stderr.replace(PROGRESS_LINE, '');
}

/**
 * A user error: exit 2 and one paragraph on stderr, `paradit: error: ...`, with no stack trace
 * and no blank line; returns the message.
 */
export function expectUserError(r: CliResult, code = 2): string {
  if (r.code !== code) throw new Error(`expected exit ${code}, got ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const err = withoutProgress(r.stderr).trimEnd();
  expect(err).toMatch(/^paradit: error: /);
  expect(err).not.toMatch(/^\s+at /m); // no stack frames
  expect(err).not.toMatch(/\n\s*\n/); // one paragraph
  expect(err).not.toMatch(/internal error/);
  return err.slice('paradit: error: '.length);
}

const made: string[] = [];

export function tempDir(tag: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `paradit-cli-${tag}-`));
  made.push(d);
  return d;
}

/** Removes the folders tempDir made (call in afterAll). */
export function removeTempDirs(): void {
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/**
 * Writes `m` as DIR/model.onnx (weights in model.onnx.data when `externalData`) with
 * test_data_set_0 holding `inputs` and the interpreter's outputs; returns DIR.
 */
export function writeModelDir(m: Module, inputs: readonly Tensor[], tag: string, externalData = false): string {
  const dir = tempDir(tag);
  saveModel(m, path.join(dir, 'model.onnx'), { externalData });
  const set = path.join(dir, 'test_data_set_0');
  fs.mkdirSync(set);
  inputs.forEach((t, k) => writeTensorFile(path.join(set, `input_${k}.pb`), t, m.graph.inputs[k]!.name));
  interpret(m, inputs).forEach((t, k) => writeTensorFile(path.join(set, `output_${k}.pb`), t, m.graph.outputs[k]!.name));
  return dir;
}
