/**
 * Bounded waits of a launched rank. A rank never blocks in cuStreamSynchronize or a blocking NCCL
 * call: when a peer dies, NCCL kernels spin forever and such a call would never return. Instead it
 * polls (an event, or a non-blocking communicator's state): a short spin, then ~1 ms sleeps
 * (Atomics.wait, which sleeps this thread without an event loop), checking the communicators'
 * asynchronous errors and the peers' failure beacon as it goes; after `timeoutMs` or on a peer's
 * failure it gives up (the caller's `giveUp` aborts the communicators, which makes NCCL kernels
 * exit) and throws RankFailure naming what this rank was waiting for. No FFI here: the probes are
 * passed in, so the loop is unit-tested with fake clocks.
 */
import { RankFailure } from '../distributed/types';

interface WaitProbes {
  /** True when the awaited work finished; throws when it failed. */
  readonly done: () => boolean;
  /** A communicator's asynchronous error, when one has one (NCCL reports peers' failures there too). */
  readonly asyncError?: () => string | undefined;
  /** The peers' failure beacon (RankWatch.peerFailure). */
  readonly peerFailure?: () => string | undefined;
  /** Called once before throwing: abort the communicators. */
  readonly giveUp?: () => void;
}

interface WaitOptions {
  /** "rank 0" */
  readonly who: string;
  /** "in NCCL communicator set-up (world 2)", "waiting for the step (instruction 12: all_to_all ...)" */
  readonly what: string;
  readonly timeoutMs: number;
  /** Spin this long before sleeping (default 2 ms: a step usually ends within it). */
  readonly spinMs?: number;
  /** Check the (costlier) peer beacon this often (default 100 ms). */
  readonly peerEveryMs?: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => void;
}

let sleeper: Int32Array | undefined;

/** Sleeps this thread for `ms` (fractional) without returning to the event loop. */
function sleepMs(ms: number): void {
  sleeper ??= new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(sleeper, 0, 0, ms);
}

function seconds(ms: number): string {
  return ms >= 10000 ? `${Math.round(ms / 1000)} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** Polls until `probes.done()`; throws RankFailure on timeout, a communicator error or a peer's failure. */
export function waitBounded(probes: WaitProbes, opts: WaitOptions): void {
  const now = opts.now ?? (() => performance.now());
  const sleep = opts.sleep ?? sleepMs;
  const spinMs = opts.spinMs ?? 2;
  const peerEvery = opts.peerEveryMs ?? 100;
  const t0 = now();
  let lastPeer = t0;
  let nap = 0.05;
  const fail = (why: string): never => {
    try {
      probes.giveUp?.();
    } catch {
      /* aborting is best effort: the failure below is what matters */
    }
    throw new RankFailure(`${opts.who}: ${why}`);
  };
  for (;;) {
    if (probes.done()) return;
    const t = now();
    if (t - t0 < spinMs) continue;
    const err = probes.asyncError?.();
    if (err) fail(`NCCL reported an error ${opts.what}: ${err}`);
    if (t - lastPeer >= peerEvery) {
      lastPeer = t;
      const peer = probes.peerFailure?.();
      if (peer) fail(`stopped ${opts.what} because a peer failed: ${peer}`);
    }
    if (t - t0 >= opts.timeoutMs) fail(`timed out after ${seconds(t - t0)} ${opts.what}; a peer rank failed or never started — see its log`);
    sleep(nap);
    nap = Math.min(1, nap * 2);
  }
}
