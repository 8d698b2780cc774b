/**
 * How the CLI ends: user errors (IrError) print their one-paragraph message and exit 2; a
 * mismatch found by `check` exits 1; anything else is an internal error, reported in one line
 * (with the stack only under --debug). A rank of a launched job that stops because another rank
 * failed (or it timed out waiting for one) exits 4; SIGINT and SIGTERM exit 130 and 143.
 */
import { isIrError } from '@paradit/ir';
import { RankFailure } from '@paradit/runtime';

export const EXIT_OK = 0;
export const EXIT_MISMATCH = 1;
export const EXIT_BAD_INPUT = 2;
export const EXIT_INTERNAL = 3;
/** A launched rank stopped because a peer rank failed, died or never answered within --timeout. */
export const EXIT_PEER_FAILED = 4;

export function reportError(e: unknown, debug: boolean): number {
  if (isIrError(e)) {
    process.stderr.write(`paradit: error: ${e.message}\n`);
    if (debug && e.stack) process.stderr.write(`${e.stack}\n`);
    return EXIT_BAD_INPUT;
  }
  if (e instanceof RankFailure) {
    process.stderr.write(`paradit: error: ${e.message}\n`);
    if (debug && e.stack) process.stderr.write(`${e.stack}\n`);
    return EXIT_PEER_FAILED;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  process.stderr.write(`paradit: internal error: ${err.message}\n`);
  if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
  else process.stderr.write('paradit: this is a bug in ParaDiT; rerun with --debug for the stack and report it\n');
  return EXIT_INTERNAL;
}
