/**
 * A cost model of plan instructions on one Hopper GPU and its links: what the scheduler
 * (schedule.ts) orders by and what `inspect` reports for communication. Rates are this project's
 * own H100 measurements (docs/perf-notes.md, flux-dev-2x4 profile): bf16 GEMMs 688 TFLOP/s on
 * average in the plan, the flash kernel 535, memory-bound kernels ~2.5 TB/s, NVLink collectives
 * ~330 GB/s bus bandwidth (an all-reduce of 1 GiB on the 2-GPU kind). Times are seconds; they rank
 * work, they are not promises.
 */
import { byteSize, numel } from '@paradit/ir';
import type { Node, Value } from '@paradit/ir';
import type { LCollective, LInstr } from './program';

export interface CostRates {
  /** Dense bf16/f16 GEMM rate, FLOP/s. */
  readonly gemmLow: number;
  /** fp32 GEMM rate (no TF32), FLOP/s. */
  readonly gemmF32: number;
  /** Flash-attention rate, FLOP/s. */
  readonly attention: number;
  /** Memory-bound kernels and copies, bytes/s (read + write). */
  readonly memory: number;
  /** Bus bandwidth of one rank's link for collectives, bytes/s. */
  readonly link: number;
  /** Fixed cost of a collective (NCCL launch and synchronization), s. */
  readonly collectiveLatency: number;
  /** Fixed cost of a kernel launch inside a graph, s. */
  readonly launch: number;
}

export const H100_NVLINK: CostRates = {
  gemmLow: 690e12,
  gemmF32: 50e12,
  attention: 535e12,
  memory: 2.5e12,
  link: 330e9,
  collectiveLatency: 12e-6,
  launch: 2e-6,
};

const bytesOf = (v: Value): number => numel(v.shape as number[]) * byteSize(v.dtype);

/** FLOPs of an attention node (QK^T and PV), 0 for anything else. */
function attentionFlops(n: Node): number {
  if (n.op !== 'attention' && n.op !== 'attention_lse') return 0;
  const [q, k, v] = n.inputs as [Value, Value, Value];
  const [B, N, Sq, H] = q.shape as number[];
  const Skv = (k.shape as number[])[2]!;
  const Hv = (v.shape as number[])[3]!;
  return 2 * B! * N! * Sq! * Skv * (H! + Hv);
}

/** Bytes one rank moves over its link for a collective (the ring-algorithm counts NCCL uses). */
export function linkBytes(c: LCollective): number {
  const b = bytesOf(c.send);
  const n = c.groupSize;
  switch (c.collective) {
    case 'all_to_all':
      return ((n - 1) / n) * b;
    case 'all_gather':
      return (n - 1) * b;
    case 'all_reduce':
      return (2 * (n - 1) * b) / n;
    case 'send_recv':
      return n > 1 ? b : 0;
  }
}

export function collectiveSeconds(c: LCollective, r: CostRates = H100_NVLINK): number {
  return c.groupSize > 1 ? r.collectiveLatency + linkBytes(c) / r.link : 2 * bytesOf(c.send) / r.memory;
}

/** Estimated seconds of one instruction (a branch: its more expensive region). */
export function instrSeconds(i: LInstr, r: CostRates = H100_NVLINK): number {
  switch (i.op) {
    case 'gemm': {
      const flops = 2 * i.m * i.n * i.k * i.batch;
      const low = i.out.value.dtype !== 'f32';
      const bytes = bytesOf(i.a.value) + bytesOf(i.b.value) + bytesOf(i.out.value);
      return r.launch + Math.max(flops / (low ? r.gemmLow : r.gemmF32), bytes / r.memory);
    }
    case 'kernel': {
      const flops = i.kernel.covers.reduce((s, n) => s + attentionFlops(n), 0);
      const bytes = [...i.kernel.reads, ...i.kernel.writes].reduce((s, v) => s + bytesOf(v), 0);
      return r.launch + Math.max(flops / r.attention, bytes / r.memory);
    }
    case 'copy':
      return r.launch + (2 * bytesOf(i.src)) / r.memory;
    case 'shard_slice':
      return r.launch + (2 * bytesOf(i.dst)) / r.memory;
    case 'collective':
      return collectiveSeconds(i, r);
    case 'branch':
      return Math.max(i.then.reduce((s, x) => s + instrSeconds(x, r), 0), i.else.reduce((s, x) => s + instrSeconds(x, r), 0));
  }
}
