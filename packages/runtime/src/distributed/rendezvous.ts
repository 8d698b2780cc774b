/**
 * Rendezvous of W ranks that run in one process (simulated CPU ranks, or W ranks sharing one GPU):
 * each rank's step is an async function that awaits `arrive` at every collective; when the last
 * rank arrives at the same instruction, `complete` gets every rank's payload (rank order) and does
 * the exchange, then all ranks resume. A rank that arrives at a different instruction, finishes
 * its step while others wait, or fails, aborts the group: every waiting rank gets an error that
 * names the ranks and instructions involved, so a bug cannot hang the process.
 */
import { IrError } from '@paradit/ir';

interface Waiting<T> {
  readonly where: string;
  readonly payload: T;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

export class Rendezvous<T> {
  private waiting = new Map<number, Waiting<T>>();
  private aborted: Error | undefined;

  constructor(
    readonly world: number,
    /** Runs once all ranks arrived: payloads[r] is rank r's. May be async. */
    private readonly complete: (payloads: readonly T[], where: string) => void | Promise<void>,
  ) {}

  /** Rank `rank` reached the collective at `where` (its program position); resolves after the exchange. */
  arrive(rank: number, where: string, payload: T): Promise<void> {
    if (this.aborted) return Promise.reject(this.aborted);
    if (this.waiting.has(rank)) return Promise.reject(new Error(`rank ${rank} arrived twice at a collective`));
    const other = [...this.waiting.entries()].find(([, w]) => w.where !== where);
    if (other) {
      const e = new IrError('E_RUNTIME', `ranks diverged: rank ${rank} is at the collective of instruction ${where}, rank ${other[0]} at instruction ${other[1].where}; every rank must run the same program`);
      this.abort(e);
      return Promise.reject(e);
    }
    return new Promise<void>((resolve, reject) => {
      this.waiting.set(rank, { where, payload, resolve, reject });
      if (this.waiting.size === this.world) void this.fire(where);
    });
  }

  /** A rank finished its step: any rank still waiting can never be served. */
  finished(rank: number): void {
    if (this.waiting.size > 0 && !this.aborted) {
      const [r, w] = [...this.waiting.entries()][0]!;
      this.abort(new IrError('E_RUNTIME', `rank ${rank} finished its step while rank ${r} waits at the collective of instruction ${w.where}; every rank must run the same program`));
    }
  }

  /** Fails every waiting rank (and later arrivals) with `e`. */
  abort(e: Error): void {
    if (!this.aborted) this.aborted = e;
    const w = [...this.waiting.values()];
    this.waiting.clear();
    for (const x of w) x.reject(e);
  }

  /** Ready for a new step after a failure (a fresh generation). */
  reset(): void {
    this.aborted = undefined;
    this.waiting.clear();
  }

  private async fire(where: string): Promise<void> {
    const entries = [...this.waiting.entries()].sort((a, b) => a[0] - b[0]);
    this.waiting.clear();
    try {
      await this.complete(entries.map(([, w]) => w.payload), where);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.aborted = err;
      for (const [, w] of entries) w.reject(err);
      return;
    }
    for (const [, w] of entries) w.resolve();
  }
}

/**
 * Runs `W` rank steps concurrently against one rendezvous: a failing rank aborts the others (their
 * errors then name it), and the first real failure is what the caller sees.
 */
export async function runRanks<R>(group: Rendezvous<unknown>, W: number, step: (rank: number) => Promise<R>): Promise<R[]> {
  group.reset();
  let first: { rank: number; error: Error } | undefined;
  const results = await Promise.all(
    Array.from({ length: W }, async (_, rank) => {
      try {
        const r = await step(rank);
        group.finished(rank);
        return r;
      } catch (e) {
        const error = e instanceof Error ? e : new Error(String(e));
        if (!first) first = { rank, error };
        group.abort(new IrError('E_RUNTIME', `rank ${rank} failed: ${error.message}`));
        return undefined;
      }
    }),
  );
  if (first) {
    const e = first.error;
    if (W > 1 && e instanceof IrError && !/^rank \d+/.test(e.message)) throw new IrError(e.code, `rank ${first.rank}: ${e.message}`, e.nodeName);
    throw e;
  }
  return results as R[];
}
