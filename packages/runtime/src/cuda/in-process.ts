/**
 * Every rank of a sharded plan on ONE GPU, in this process: the single-GPU numerics check of any
 * sharded plan (NCCL refuses two ranks on one GPU). W CudaRanks, each with its own io, arena and
 * state spaces, streams and events, share one DevicePlan (the weights are read-only and identical:
 * uploaded once; kernels loaded once). Steps are eager (no graphs) and in lockstep through the
 * Rendezvous (distributed/rendezvous.ts), as SimulatedPlanRanks does on the CPU: each rank's
 * enqueue is a generator that yields at every collective and every branch decision.
 *
 * At a collective, once every rank arrived: each rank's stream records an event and waits for
 * its group's; each receive is a device-to-device copy from a peer's send buffer on the receiving
 * rank's stream (exchange.ts; an all_reduce gathers into scratch and reduces with a helper kernel
 * that rounds exactly as collectiveOverGroup does); then the streams record and wait again, so no
 * rank overwrites a send buffer before its peers have read it. Branch decisions must agree (the
 * cache decision is all-reduced); the outputs must be identical on every rank (checkReplicated).
 */
import { IrError, formatMesh, worldSize } from '@paradit/ir';
import type { Mesh, Tensor } from '@paradit/ir';
import type { StepExecutor } from '../denoise/step-executor';
import { Rendezvous, runRanks } from '../distributed/rendezvous';
import { planMesh } from '../plan/cpu-backend';
import type { Plan } from '../plan/schema';
import { checkReplicated } from '../plan/simulated-ranks';
import { DevicePlan } from './device-plan';
import type { DeviceInfo } from './driver';
import { RankYield, enqueueGen } from './enqueue';
import { ExchangePlan, inProcessExchange } from './exchange';
import type { Ptr } from './ffi';
import { tuneGemms } from './gemm-tune';
import { launchOn } from './launch';
import type { LoadedPlanFiles } from './plan-files';
import type { PreparedCollective } from './prepare-comm';
import { CudaRank } from './rank';

export interface InProcessCudaOptions {
  readonly device?: number;
  readonly forceNvrtc?: boolean;
  readonly verifyWeights?: boolean;
  /** Tune gemms on rank 0 and give every rank its choices (default false: this mode checks numerics). */
  readonly tuneGemms?: boolean;
  readonly log?: (line: string) => void;
}

type Arrival = { readonly rank: number; readonly y: RankYield };

export class InProcessCudaRanks implements StepExecutor {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly blocks?: { readonly total: number; readonly skippedWhenCached: number };
  readonly plan: Plan;
  readonly mesh: Mesh;
  readonly dp: DevicePlan;
  readonly ranks: CudaRank[] = [];
  readonly report: { readonly device: DeviceInfo; readonly kernels: string; readonly ranks: number; readonly graph: 'off'; readonly collectives: 'in-process' };
  private readonly group: Rendezvous<Arrival>;
  /** Two barrier events per rank: before the copies and after them. */
  private readonly barrier: [Ptr[], Ptr[]] = [[], []];
  private readonly exchanges = new Map<string, ExchangePlan>();
  private disposed = false;

  constructor(files: LoadedPlanFiles, opts: InProcessCudaOptions = {}) {
    this.plan = files.plan;
    this.mesh = planMesh(this.plan);
    const W = worldSize(this.mesh);
    this.inputNames = this.plan.inputs.map((i) => i.name);
    this.outputNames = this.plan.outputs.map((o) => o.name);
    const total = this.plan.stats['fbcacheTotalBlocks'];
    const skipped = this.plan.stats['fbcacheSkippedBlocks'];
    if (total !== undefined && skipped !== undefined) this.blocks = { total, skippedWhenCached: skipped };
    this.dp = new DevicePlan(files, { device: opts.device, forceNvrtc: opts.forceNvrtc, verifyWeights: opts.verifyWeights, world: W, mode: `${W} ranks sharing one GPU in this process`, log: opts.log });
    try {
      for (let r = 0; r < W; r++) {
        this.ranks.push(new CudaRank(this.dp, { rank: r, collectives: 'in-process' }));
        for (const b of this.barrier) b.push(this.dp.d.eventCreate(false));
      }
      if (opts.tuneGemms && this.ranks[0]!.gemms.length) {
        const r0 = this.ranks[0]!;
        tuneGemms(this.dp.d, r0.stepStream, r0.gemms);
        for (const r of this.ranks.slice(1)) r.gemms.forEach((g, i) => g.select(Math.min(r0.gemms[i]!.selected, g.candidates - 1)));
      }
      for (const r of this.ranks) r.clearScratch();
    } catch (e) {
      this.dispose();
      throw e;
    }
    this.report = { device: this.dp.info, kernels: this.dp.kernels, ranks: W, graph: 'off', collectives: 'in-process' };
    this.group = new Rendezvous<Arrival>(W, (arrivals, where) => this.meet(arrivals, where));
  }

  resetState(): void {
    for (const r of this.ranks) r.resetState();
  }

  async step(inputs: ReadonlyMap<string, Tensor>): Promise<Map<string, Tensor>> {
    if (this.disposed) throw new Error('InProcessCudaRanks: step() after dispose()');
    const W = this.ranks.length;
    const outs = await runRanks(this.group as Rendezvous<unknown>, W, async (r) => {
      const rank = this.ranks[r]!;
      rank.upload(inputs);
      for (const y of enqueueGen(rank.enqueueEnv({ lockstep: true }), rank.program, 0, false)) {
        await this.group.arrive(r, y.kind === 'collective' ? `${y.p.where}` : `${y.where} (branch)`, { rank: r, y });
      }
      // Every event this stream waits for was recorded when its collectives met: no deadlock.
      this.dp.d.sync(rank.stepStream);
      return rank.download();
    });
    checkReplicated(outs, this.mesh);
    return outs[0]!;
  }

  /** All ranks arrived at the same instruction: check branch agreement, or enqueue the exchange. */
  private meet(arrivals: readonly Arrival[], where: string): void {
    const first = arrivals[0]!.y;
    if (first.kind === 'branch') {
      const sides = arrivals.map((a) => (a.y.kind === 'branch' ? a.y.side : 'a collective'));
      if (sides.some((s) => s !== sides[0])) {
        const by = (side: string) => arrivals.filter((_, i) => sides[i] === side).map((a) => a.rank).join(', ');
        throw new IrError('E_RUNTIME', `branch ${where} of mesh ${formatMesh(this.mesh)}: ranks ${by('then')} take 'then', ranks ${by('else')} take 'else'; every rank must take the same side (the cache decision must be all-reduced)`);
      }
      return;
    }
    const ps = arrivals.map((a) => (a.y.kind === 'collective' ? a.y : undefined));
    const p0 = (ps[0]!).p;
    ps.forEach((x, r) => {
      if (!x || x.p.sendBytes !== p0.sendBytes || x.p.recvBytes !== p0.recvBytes) {
        throw new IrError('E_RUNTIME', `${p0.ctx.detail} at instruction ${where}: rank ${r} arrived with ${x ? `${x.p.sendBytes} send bytes` : 'a branch'}, rank 0 with ${p0.sendBytes}; every rank must run the same program`);
      }
    });
    this.exchange(ps.map((x) => x!.p), ps.map((x) => x!.stream), where);
  }

  private exchange(ps: readonly PreparedCollective[], streams: readonly Ptr[], where: string): void {
    const d = this.dp.d;
    const p0 = ps[0]!;
    let plan = this.exchanges.get(where);
    if (!plan) {
      plan = inProcessExchange(this.mesh, p0.instr, p0.sendBytes);
      this.exchanges.set(where, plan);
    }
    const fence = (k: 0 | 1) => {
      ps.forEach((p, r) => d.call('cuEventRecord', [this.barrier[k][r]!, streams[r]!], p.ctx));
      for (const g of plan.groups) for (const r of g) for (const q of g) if (q !== r) d.call('cuStreamWaitEvent', [streams[r]!, this.barrier[k][q]!, 0], ps[r]!.ctx);
    };
    fence(0);
    for (const r of plan.zeros) d.call('cuMemsetD8Async', [ps[r]!.recv, 0, ps[r]!.sendBytes, streams[r]!], ps[r]!.ctx);
    for (const c of plan.copies) {
      const to = ps[c.dstRank]!;
      const dst = (c.into === 'recv' ? to.recv : to.scratch) + BigInt(c.dstOffset);
      d.call('cuMemcpyDtoDAsync_v2', [dst, ps[c.srcRank]!.send + BigInt(c.srcOffset), c.bytes, streams[c.dstRank]!], to.ctx);
    }
    fence(1);
    if (plan.reduce) {
      ps.forEach((p, r) => {
        if (!p.reduce) throw new Error(`${p.ctx.detail} at instruction ${where}: rank ${r} has no reduce kernel prepared`);
        launchOn(d, p.reduce, streams[r]!, p.ctx);
      });
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const r of this.ranks) r.dispose();
    for (const b of this.barrier) for (const e of b) {
      try {
        this.dp.d.call('cuEventDestroy_v2', [e]);
      } catch {
        /* best effort during teardown */
      }
    }
    this.dp.dispose();
  }
}
