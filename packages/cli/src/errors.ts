/**
 * How the CLI ends. Two classes of failure, kept apart so a bug is never reported as bad input:
 *   exit 2, user error: an IrError (the model, the flags, the test data, the plan file) or a file
 *     system error (EACCES, ENOENT, ENOTDIR, EEXIST, ENOSPC, ...), printed as one paragraph
 *     `paradit: error: ...` naming the path and a fix;
 *   exit 3, a bug in ParaDiT: an InternalError (a pass produced invalid IR, an op's rule or an
 *     instruction failed inside) or any other exception (a TypeError), printed as
 *     `paradit: internal error: this is a bug in ParaDiT: ...` naming the pass or instruction.
 * A mismatch found by `check` or `run --compare` exits 1. A rank of a launched job that stops
 * because another rank failed, died or never answered within --timeout exits 4 (RankFailure);
 * SIGINT and SIGTERM stop a launched rank with 130 and 143. The stack is printed only under --debug.
 */
import { IrError, isInternalError, isIrError } from '@paradit/ir';
import { RankFailure } from '@paradit/runtime';

export const EXIT_OK = 0;
export const EXIT_MISMATCH = 1;
const EXIT_BAD_INPUT = 2;
const EXIT_INTERNAL = 3;
/** A launched rank stopped because a peer rank failed, died or never answered within --timeout. */
export const EXIT_PEER_FAILED = 4;

/** What each file system error code means for the user, and the usual fix. */
const FS_ERRORS: Record<string, { what: string; fix: string }> = {
  EACCES: { what: 'permission denied', fix: 'choose a path you may write (or read), or change its permissions' },
  EPERM: { what: 'operation not permitted', fix: 'choose a path you may write (or read), or change its permissions' },
  EROFS: { what: 'the file system is read-only', fix: 'choose a path on a writable file system' },
  ENOENT: { what: 'no such file or folder', fix: 'check the path (its parent folders must exist)' },
  ENOTDIR: { what: 'a part of the path is a file, not a folder', fix: 'choose a path whose parents are folders' },
  EISDIR: { what: 'it is a folder, not a file', fix: 'pass a file path' },
  EEXIST: { what: 'it already exists', fix: 'choose another path or remove it' },
  ENOTEMPTY: { what: 'the folder is not empty', fix: 'choose another path or remove it' },
  ENOSPC: { what: 'no space left on the device', fix: 'free some disk space or write to another disk' },
  EDQUOT: { what: 'the disk quota is exhausted', fix: 'free some space or write to another disk' },
  ENAMETOOLONG: { what: 'the path is too long', fix: 'choose a shorter path' },
  EMFILE: { what: 'too many open files', fix: 'raise the open-file limit (ulimit -n)' },
};

interface ErrnoLike {
  readonly code: string;
  readonly syscall?: string;
  readonly path?: string;
  readonly dest?: string;
}

function errnoOf(e: unknown): ErrnoLike | undefined {
  if (!(e instanceof Error)) return undefined;
  const c = (e as { code?: unknown }).code;
  return typeof c === 'string' && c in FS_ERRORS ? (e as unknown as ErrnoLike) : undefined;
}

/**
 * A file system error as a user error naming the path and a fix; `subject` names the flag or
 * file it was about ("-o /x/plan") when the error itself carries no path (ENOSPC from a write).
 */
export function fsUserError(e: unknown, subject?: string): IrError | undefined {
  const x = errnoOf(e);
  if (!x) return undefined;
  const info = FS_ERRORS[x.code]!;
  const p = x.path ? `${x.path}${x.dest ? ` -> ${x.dest}` : ''}` : undefined;
  const where = [subject, p && !subject?.includes(p) ? p : undefined].filter(Boolean).join(': ') || 'a file operation';
  return new IrError('E_INPUT', `${where}: ${x.syscall ? `${x.syscall} failed, ` : ''}${info.what} (${x.code}); ${info.fix}`);
}

export function reportError(e: unknown, debug: boolean): number {
  const user = isIrError(e) ? e : fsUserError(e);
  if (user) {
    process.stderr.write(`paradit: error: ${user.message}\n`);
    const stack = e instanceof Error ? e.stack : undefined;
    if (debug && stack) process.stderr.write(`${stack}\n`);
    return EXIT_BAD_INPUT;
  }
  if (e instanceof RankFailure) {
    process.stderr.write(`paradit: error: ${e.message}\n`);
    if (debug && e.stack) process.stderr.write(`${e.stack}\n`);
    return EXIT_PEER_FAILED;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  const where = isInternalError(err) ? '' : ` (${err.name})`;
  process.stderr.write(`paradit: internal error: this is a bug in ParaDiT${where}: ${err.message}\n`);
  if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
  else process.stderr.write('paradit: rerun with --debug for the stack and report it with the command that failed\n');
  return EXIT_INTERNAL;
}
