/**
 * Where a plan directory is written, checked before any work and cleaned up after any failure:
 *
 *   checkPlanOutput(target)  before compiling: '' and paths under a file are refused; an existing
 *                            target must be an empty folder or a ParaDiT plan (plan.json of format
 *                            'paradit-plan' and only plan files), never another folder; the first
 *                            existing ancestor must be a writable folder.
 *   makeWorkDir(target)      creates the missing parents and a hidden `.NAME.tmp-*` folder beside
 *                            the target; its `discard()` removes the folder and the parents it made.
 *   replaceWithPlan(tmp, t)  the rename into place (the old plan is moved aside, then deleted).
 *   onAbort / abortAll       cleanups that a SIGINT or SIGTERM handler runs (remove temporary
 *                            folders, kill nvcc's process group) before the process exits.
 */
import fs from 'node:fs';
import path from 'node:path';
import { IrError } from '@paradit/ir';
import { PLAN_FORMAT } from '@paradit/runtime';

/** The entries a plan directory may hold (plan-writer.ts writes exactly these). */
const PLAN_ENTRIES = new Set(['plan.json', 'weights.bin', 'kernels']);
const KERNEL_ENTRIES = new Set(['module.cu', 'module.fatbin']);

const bad = (target: string, why: string, fix: string): never => {
  throw new IrError('E_INPUT', `-o ${target === '' ? "''" : target}: ${why}; ${fix}`);
};

/** Why `dir` (an existing folder) is not a ParaDiT plan that may be replaced, or undefined. */
function notAPlan(dir: string): string | undefined {
  const entries = fs.readdirSync(dir);
  if (entries.length === 0) return undefined;
  const file = path.join(dir, 'plan.json');
  if (!fs.existsSync(file)) return `a folder of ${entries.length} entries without plan.json`;
  let format: unknown;
  try {
    format = (JSON.parse(fs.readFileSync(file, 'utf8')) as { format?: unknown }).format;
  } catch {
    return 'its plan.json is not JSON';
  }
  if (format !== PLAN_FORMAT) return `its plan.json has format ${JSON.stringify(format) ?? 'undefined'}, not '${PLAN_FORMAT}'`;
  const extra = entries.filter((e) => !PLAN_ENTRIES.has(e));
  const kdir = path.join(dir, 'kernels');
  if (fs.existsSync(kdir) && fs.statSync(kdir).isDirectory()) extra.push(...fs.readdirSync(kdir).filter((e) => !KERNEL_ENTRIES.has(e)).map((e) => `kernels/${e}`));
  if (extra.length) return `a ParaDiT plan that also holds ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', ...' : ''}, which replacing it would delete`;
  return undefined;
}

/** Refuses, before any compile work, an output path a plan cannot be written to (exit 2). */
export function checkPlanOutput(target: string): void {
  if (target.trim() === '') bad(target, 'the output path is empty', 'pass the plan folder to write, e.g. -o plans/flux');
  const abs = path.resolve(target);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(abs);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ENOTDIR') return checkAncestor(target, abs);
    if (code !== 'ENOENT') bad(target, `cannot look at it (${(e as Error).message})`, 'choose another path');
  }
  if (st) {
    if (!st.isDirectory()) bad(target, 'it is a file, not a plan folder', 'choose another -o path or remove the file');
    const why = notAPlan(abs);
    if (why) bad(target, `it exists and is not a plan directory that may be replaced: ${why}`, 'choose another -o path (an empty or new folder, or an earlier plan) or remove it');
    try {
      fs.accessSync(path.dirname(abs), fs.constants.W_OK);
      fs.accessSync(abs, fs.constants.W_OK);
    } catch {
      bad(target, `the plan or its folder ${path.dirname(abs)} is not writable (permission denied)`, 'choose a folder you may write');
    }
    return;
  }
  checkAncestor(target, abs);
}

/** The nearest existing ancestor of a new target must be a folder we may write into. */
function checkAncestor(target: string, abs: string): void {
  let p = path.dirname(abs);
  while (!fs.existsSync(p)) p = path.dirname(p);
  if (!fs.statSync(p).isDirectory()) bad(target, `${p} is a file, so no folder can be made under it`, 'choose a path whose parents are folders');
  try {
    fs.accessSync(p, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    bad(target, `the folder ${p} is not writable (permission denied)`, 'choose a folder you may write, or change its permissions');
  }
}

/**
 * Cleanups run when the process gets SIGINT, SIGTERM or SIGHUP. The handlers are installed only
 * while some cleanup is registered (a plan is being written, nvcc runs), so a signal during the
 * synchronous compile work still ends the process at once; once they have run, the signal is
 * raised again with the default action, so the shell sees the process killed by it (exit 130/143).
 */
const aborts = new Set<() => void>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function onSignal(sig: NodeJS.Signals): void {
  abortAll();
  process.kill(process.pid, sig);
}

export function onAbort(fn: () => void): () => void {
  if (aborts.size === 0) for (const s of SIGNALS) process.on(s, onSignal);
  aborts.add(fn);
  return () => {
    if (aborts.delete(fn) && aborts.size === 0) for (const s of SIGNALS) process.removeListener(s, onSignal);
  };
}

/** Runs every registered cleanup once (synchronously; errors are ignored: the process is ending). */
export function abortAll(): void {
  const fns = [...aborts];
  aborts.clear();
  for (const sig of SIGNALS) process.removeListener(sig, onSignal);
  for (const fn of fns) {
    try {
      fn();
    } catch {
      // keep cleaning up the others
    }
  }
}

interface WorkDir {
  readonly path: string;
  /** Removes the work folder and every parent folder makeWorkDir created (when still empty). */
  discard(): void;
  /** After the rename into place: nothing to clean up any more. */
  keep(): void;
}

/** A hidden work folder beside `target` (same file system, so the final rename is atomic). */
export function makeWorkDir(target: string): WorkDir {
  const abs = path.resolve(target);
  const parent = path.dirname(abs);
  const firstMade = fs.mkdirSync(parent, { recursive: true });
  let tmp: string;
  try {
    tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(abs)}.tmp-`));
  } catch (e) {
    if (firstMade) removeMadeParents(parent, firstMade);
    throw e;
  }
  let unregister = (): void => undefined;
  const discard = (): void => {
    unregister();
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(`${tmp}.old`, { recursive: true, force: true });
    if (firstMade) removeMadeParents(parent, firstMade);
  };
  unregister = onAbort(discard);
  return { path: tmp, discard, keep: () => unregister() };
}

/** Removes `dir` and its parents up to and including `firstMade`, each only while empty. */
function removeMadeParents(dir: string, firstMade: string): void {
  for (let p = dir; p.length >= firstMade.length; p = path.dirname(p)) {
    try {
      fs.rmdirSync(p);
    } catch {
      return; // not empty (someone else wrote there) or gone
    }
    if (p === firstMade) return;
  }
}

/** Replaces `target` with the finished `tmp`; checkPlanOutput's rule is checked again first. */
export function replaceWithPlan(tmp: string, target: string): void {
  const abs = path.resolve(target);
  if (fs.existsSync(abs)) {
    if (!fs.statSync(abs).isDirectory()) bad(target, 'it became a file while compiling', 'choose another -o path');
    const why = notAPlan(abs);
    if (why) bad(target, `it exists and is not a plan directory that may be replaced: ${why}`, 'choose another -o path or remove it');
    const old = `${tmp}.old`;
    fs.renameSync(abs, old);
    fs.renameSync(tmp, abs);
    fs.rmSync(old, { recursive: true, force: true });
    return;
  }
  fs.renameSync(tmp, abs);
}
