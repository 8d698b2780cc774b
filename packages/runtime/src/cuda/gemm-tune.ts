/**
 * Load-time gemm tuning: cuBLASLt's heuristic pick is not always its fastest algorithm (H100,
 * 2026-11-26: 4608x3072 @ 3072x12288 bf16 ran at 623 TFLOP/s with the first candidate vs 776 for
 * torch.matmul). For gemms worth it (>= MIN_TUNE_FLOPS), each usable candidate is timed with CUDA
 * events and the fastest kept; results are shared between gemms of the same problem (same layouts,
 * types, epilogue and alignment), so a 57-block model tunes each distinct shape once.
 * Tuning launches the gemm on its real buffers, so it must run before the first step (outputs and
 * arena are overwritten by the step anyway; the backend zeroes state afterwards).
 */
import type { Driver } from './driver';
import type { Ptr } from './ffi';
import type { PreparedGemm } from './cublaslt';
import { addressAlignment, gemmFlops } from './gemm-layout';

export const MIN_TUNE_FLOPS = 2e9;
/**
 * A candidate replaces the heuristic's pick only when it is this much faster: on an H100 the same
 * algorithm's time moves by several percent between runs (clocks under load), so a smaller margin
 * mostly chases noise (seen 2026-11-26: 'tuned' choices of candidate 0 timing 5-13% apart).
 */
const TUNE_MARGIN = 0.03;

interface TuneOptions {
  readonly reps?: number;
  readonly minFlops?: number;
}

/** The problem a gemm solves, minus its addresses (alignments included: they change the algorithm set). */
export function gemmTuneKey(p: PreparedGemm): string {
  const g = p.g;
  const l = (x: typeof g.A) => [x.type, x.rows, x.cols, x.ld, x.batch, x.batchStride, addressAlignment(x.ptr)].join(',');
  return [g.transa, g.transb, g.epilogue, g.bias?.type ?? '-', l(g.A), l(g.B), l(g.D)].join('|');
}

/** Times every candidate of each gemm (once per distinct problem); returns how many were timed. */
export function tuneGemms(d: Driver, stream: Ptr, gemms: readonly PreparedGemm[], opts: TuneOptions = {}): number {
  const reps = opts.reps ?? 10;
  const minFlops = opts.minFlops ?? MIN_TUNE_FLOPS;
  const chosen = new Map<string, number>();
  const e0 = d.eventCreate();
  const e1 = d.eventCreate();
  let timed = 0;
  try {
    for (const p of gemms) {
      const g = p.g;
      const flops = gemmFlops({ m: g.D.cols, n: g.D.rows, k: g.transa ? g.A.rows : g.A.cols, batch: g.D.batch });
      if (p.candidates < 2 || flops < minFlops) continue;
      const key = gemmTuneKey(p);
      const known = chosen.get(key);
      if (known !== undefined) {
        p.select(known);
        continue;
      }
      const timeCandidate = (i: number): number => {
        p.select(i);
        p.launch(stream); // warm-up (loads the kernel)
        d.call('cuEventRecord', [e0, stream]);
        for (let r = 0; r < reps; r++) p.launch(stream);
        d.call('cuEventRecord', [e1, stream]);
        d.call('cuEventSynchronize', [e1]);
        return d.elapsedMs(e0, e1) / reps;
      };
      const times = Array.from({ length: p.candidates }, (_, i) => timeCandidate(i));
      // The heuristic's pick is timed again last, so clock drift during tuning favours no one.
      times[0] = Math.min(times[0]!, timeCandidate(0));
      let best = 0;
      for (let i = 1; i < times.length; i++) if (times[i]! < times[best]!) best = i;
      const bestMs = times[best]!;
      const heuristicMs = times[0]!;
      if (bestMs > heuristicMs * (1 - TUNE_MARGIN)) best = 0;
      p.select(best);
      chosen.set(key, best);
      timed++;
    }
  } finally {
    d.call('cuEventDestroy_v2', [e0]);
    d.call('cuEventDestroy_v2', [e1]);
  }
  return timed;
}
