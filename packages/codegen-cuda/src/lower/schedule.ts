/**
 * schedule-streams: orders a sharded program so communication overlaps compute, and puts the
 * collectives on the communication stream with the events that order them.
 *
 * Requires: a lowered program (values not yet placed in memory: the planner runs on the new order).
 * Ensures (per instruction list, branch regions included):
 *   - the order respects every read/write dependency on a buffer (views count as their base);
 *   - list scheduling over a two-stream timeline of the cost model (cost-model.ts): a collective
 *     is issued as soon as its inputs are ready; the compute stream then takes the ready
 *     instruction that can start earliest (work that does not wait for the collective: the
 *     other stream's projections, an MLP beside attention, the next ring step), ties broken by the
 *     longest path to the end, then by the original order;
 *   - a collective with compute issued before it in its list runs on stream 1: it waits for an
 *     event recorded by the last stream-0 instruction before it (everything before it is done)
 *     and records an event that the first stream-0 instruction needing it waits for; a list ends
 *     with stream 1 joined. Other collectives stay on stream 0.
 * Programs without collectives are returned unchanged (single-GPU plans keep their order).
 *
 *   before: attn_lse(q,k0,v0) ; k1 = send_recv(k0) ; v1 = send_recv(v0) ; attn_lse(q,k1,v1) ; merge
 *   after:  transpose_k {record 0} ; k1 = send_recv(k0) {stream 1, wait 0} ;
 *           v1 = send_recv(v0) {stream 1, wait 0, record 1} ; attn_lse(q,k0,v0) ;
 *           attn_lse(q,k1,v1) {wait 1} ; merge
 */
import type { Value } from '@paradit/ir';
import type { LAlias, LCollective, LInstr, LSync } from './program';
import { instrUses } from '../memory-plan';
import { H100_NVLINK, collectiveSeconds, instrSeconds } from './cost-model';
import type { CostRates } from './cost-model';

/** One collective on the simulated timeline (for inspect and docs/perf-notes.md). */
interface CommEvent {
  readonly instr: LCollective;
  readonly seconds: number;
  /** Seconds of it during which the compute stream was busy (overlapped). */
  readonly hidden: number;
}

export interface ScheduleReport {
  /** Simulated step time (the top-level list's makespan), s. */
  readonly makespan: number;
  readonly computeSeconds: number;
  readonly comm: readonly CommEvent[];
  /** The top-level list on the simulated timeline, in issue order (branches as one span). */
  readonly spans: readonly { readonly instr: LInstr; readonly start: number; readonly end: number; readonly stream: 0 | 1 }[];
}

interface Scheduled {
  readonly program: LInstr[];
  readonly events: number;
  readonly report: ScheduleReport;
}

const rootOf = (v: Value, aliases: ReadonlyMap<Value, LAlias>): Value => {
  let cur = v;
  for (let a = aliases.get(cur), i = 0; a && i < 10000; a = aliases.get(cur), i++) cur = a.of;
  return cur;
};

/** Root buffers an instruction reads and writes (a branch: everything its regions touch). */
function touches(i: LInstr, aliases: ReadonlyMap<Value, LAlias>): { reads: Set<Value>; writes: Set<Value> } {
  const reads = new Set<Value>();
  const writes = new Set<Value>();
  const add = (x: LInstr): void => {
    const u = instrUses(x);
    u.reads.forEach((v) => reads.add(rootOf(v, aliases)));
    u.writes.forEach((v) => writes.add(rootOf(v, aliases)));
    if (x.op === 'branch') {
      x.node.outputs.forEach((v) => writes.add(rootOf(v, aliases)));
      [...x.then, ...x.else].forEach(add);
    }
  };
  add(i);
  return { reads, writes };
}

const hasCollective = (list: readonly LInstr[]): boolean => list.some((i) => i.op === 'collective' || (i.op === 'branch' && (hasCollective(i.then) || hasCollective(i.else))));

interface Item {
  instr: LInstr;
  index: number;
  cost: number;
  comm: boolean;
  preds: Set<number>;
  succs: Set<number>;
  rank: number;
}

class Scheduler {
  private nextEvent = 0;
  readonly comm: CommEvent[] = [];
  computeSeconds = 0;

  constructor(
    private readonly aliases: ReadonlyMap<Value, LAlias>,
    private readonly rates: CostRates,
  ) {}

  get events(): number {
    return this.nextEvent;
  }

  /** Schedules one list; returns the new list and its simulated makespan. */
  list(input: readonly LInstr[]): { list: LInstr[]; makespan: number; spans: ScheduleReport['spans'] } {
    // Regions first (their cost is their own makespan).
    const instrs = input.map((i) => (i.op === 'branch' && hasCollective([i]) ? this.branch(i) : { instr: i, cost: instrSeconds(i, this.rates) }));
    const items = this.graph(instrs);
    const order: Item[] = [];
    const finish = new Map<number, number>();
    const placed = new Set<number>();
    let t0 = 0;
    let t1 = 0;
    const busy: [number, number][] = [];
    const commSpans: { item: Item; start: number; end: number }[] = [];
    const ready = (it: Item): boolean => [...it.preds].every((p) => placed.has(p));
    const spans: { instr: LInstr; start: number; end: number; stream: 0 | 1 }[] = [];
    while (order.length < items.length) {
      // Collectives go out as soon as their inputs are ready (they wait for stream 0 up to now).
      for (const it of items) {
        if (!placed.has(it.index) && it.comm && ready(it)) {
          const start = Math.max(t0, t1);
          t1 = start + it.cost;
          finish.set(it.index, t1);
          commSpans.push({ item: it, start, end: t1 });
          spans.push({ instr: it.instr, start, end: t1, stream: 1 });
          placed.add(it.index);
          order.push(it);
        }
      }
      let best: { it: Item; start: number } | undefined;
      for (const it of items) {
        if (placed.has(it.index) || it.comm || !ready(it)) continue;
        const start = Math.max(t0, ...[...it.preds].map((p) => finish.get(p)!));
        if (!best || start < best.start - 1e-12 || (Math.abs(start - best.start) <= 1e-12 && (it.rank > best.it.rank + 1e-12 || (Math.abs(it.rank - best.it.rank) <= 1e-12 && it.index < best.it.index)))) {
          best = { it, start };
        }
      }
      if (!best) {
        if (order.length < items.length && !items.some((it) => !placed.has(it.index) && ready(it))) throw new Error('schedule-streams: dependency cycle (a compiler bug)');
        continue; // only collectives were ready; the loop above places them
      }
      t0 = best.start + best.it.cost;
      finish.set(best.it.index, t0);
      busy.push([best.start, t0]);
      spans.push({ instr: best.it.instr, start: best.start, end: t0, stream: 0 });
      this.computeSeconds += best.it.cost;
      placed.add(best.it.index);
      order.push(best.it);
    }
    for (const s of commSpans) {
      const hidden = busy.reduce((h, [a, b]) => h + Math.max(0, Math.min(b, s.end) - Math.max(a, s.start)), 0);
      this.comm.push({ instr: s.item.instr as LCollective, seconds: s.end - s.start, hidden: Math.min(hidden, s.end - s.start) });
    }
    return { list: this.synchronize(order), makespan: Math.max(t0, t1), spans };
  }

  private branch(i: Extract<LInstr, { op: 'branch' }>): { instr: LInstr; cost: number } {
    const t = this.list(i.then);
    const e = this.list(i.else);
    return { instr: { ...i, then: t.list, else: e.list }, cost: Math.max(t.makespan, e.makespan) };
  }

  /** Dependencies on root buffers (read after write, write after read or write) and path ranks. */
  private graph(instrs: readonly { instr: LInstr; cost: number }[]): Item[] {
    const items: Item[] = instrs.map((x, index) => ({ instr: x.instr, index, cost: x.cost, comm: x.instr.op === 'collective', preds: new Set(), succs: new Set(), rank: 0 }));
    const lastWriter = new Map<Value, number>();
    const readersSince = new Map<Value, number[]>();
    for (const it of items) {
      const { reads, writes } = touches(it.instr, this.aliases);
      const dep = (p: number | undefined): void => {
        if (p === undefined || p === it.index) return;
        it.preds.add(p);
        items[p]!.succs.add(it.index);
      };
      for (const v of reads) dep(lastWriter.get(v));
      for (const v of writes) {
        dep(lastWriter.get(v));
        for (const r of readersSince.get(v) ?? []) dep(r);
      }
      for (const v of reads) readersSince.set(v, [...(readersSince.get(v) ?? []), it.index]);
      for (const v of writes) {
        lastWriter.set(v, it.index);
        readersSince.set(v, []);
      }
    }
    for (let k = items.length - 1; k >= 0; k--) {
      const it = items[k]!;
      it.rank = it.cost + Math.max(0, ...[...it.succs].map((s) => items[s]!.rank));
    }
    return items;
  }

  /** Streams and events for a scheduled list (see the header). */
  private synchronize(order: readonly Item[]): LInstr[] {
    const pos = new Map(order.map((it, k) => [it.index, k]));
    const lastCompute = order.reduce((last, it, k) => (it.comm ? last : k), -1);
    const sync: { stream: 0 | 1; wait: number[]; record?: number }[] = order.map(() => ({ stream: 0, wait: [] }));
    const event = (k: number): number => (sync[k]!.record ??= this.nextEvent++);
    let lastStream0 = -1;
    for (let k = 0; k < order.length; k++) {
      const it = order[k]!;
      if (it.comm && lastStream0 >= 0 && k < lastCompute) {
        sync[k]!.stream = 1;
        sync[k]!.wait.push(event(lastStream0));
      } else lastStream0 = k;
    }
    // Joins: a stream-0 instruction waits for the latest stream-1 instruction it depends on
    // (stream order covers the earlier ones), unless an earlier stream-0 instruction already did.
    let joinedUpTo = -1;
    let lastOnStream1 = -1;
    for (let k = 0; k < order.length; k++) {
      if (sync[k]!.stream === 1) {
        lastOnStream1 = k;
        continue;
      }
      const it = order[k]!;
      let need = Math.max(-1, ...[...it.preds].map((p) => pos.get(p)!).filter((q) => sync[q]!.stream === 1));
      if (k === lastCompute) need = Math.max(need, lastOnStream1); // the list ends joined
      if (need > joinedUpTo) {
        sync[k]!.wait.push(event(need));
        joinedUpTo = need;
      }
    }
    return order.map((it, k) => {
      const s = sync[k]!;
      const lsync: LSync = { stream: s.stream, wait: s.wait, ...(s.record !== undefined ? { record: s.record } : {}) };
      return s.stream === 0 && s.wait.length === 0 && s.record === undefined ? it.instr : { ...it.instr, sync: lsync };
    });
  }
}

/** The program reordered and synchronized for overlap (the header); unchanged without collectives. */
export function scheduleStreams(program: readonly LInstr[], aliases: ReadonlyMap<Value, LAlias>, rates: CostRates = H100_NVLINK): Scheduled {
  if (!hasCollective(program)) {
    // One stream, program order: the timeline is the sum of the costs.
    let t = 0;
    const spans = program.map((instr) => ({ instr, start: t, end: (t += instrSeconds(instr, rates)), stream: 0 as const }));
    return { program: [...program], events: 0, report: { makespan: t, computeSeconds: t, comm: [], spans } };
  }
  const s = new Scheduler(aliases, rates);
  const top = s.list(program);
  return { program: top.list, events: s.events, report: { makespan: top.makespan, computeSeconds: s.computeSeconds, comm: s.comm, spans: top.spans } };
}

export { collectiveSeconds };
