/**
 * The memory planner: gives every Value of a lowered program a buffer (space + byte offset).
 *
 * - weights (constants), io (step inputs and outputs) and state (First Block Cache) are laid out
 *   one after another, never reused;
 * - arena values get offsets from their liveness: a value lives from the first instruction that
 *   writes it to the last that reads it; a view (alias) shares its base's bytes and extends the
 *   base's lifetime; a value defined before a branch and read inside it lives to the branch's end
 *   (both regions are numbered one after the other, so a region's temporaries never overlap the
 *   values live across the If); buffers are placed best-fit in the free blocks at that time, else
 *   at the end, every offset aligned to 256 bytes. The arena's size is the peak activation memory.
 */
import { DType, Value, byteSize, numel } from '@paradit/ir';
import type { LInstr, LoweredProgram } from './lower/program';

export const ALIGNMENT = 256;

type SpaceName = 'weights' | 'io' | 'arena' | 'state';

export interface LiveRange {
  readonly id: number;
  readonly bytes: number;
  /** First and last instruction times (inclusive) at which the bytes must hold the value. */
  readonly start: number;
  readonly end: number;
}

interface ArenaPlan {
  readonly offsets: ReadonlyMap<number, number>;
  readonly peak: number;
}

const alignUp = (n: number, a = ALIGNMENT): number => Math.ceil(n / a) * a;

/** Best-fit placement of live ranges: ranges that overlap in time never overlap in bytes. */
export function planArena(ranges: readonly LiveRange[], alignment = ALIGNMENT): ArenaPlan {
  const order = [...ranges].sort((a, b) => a.start - b.start || b.bytes - a.bytes || a.id - b.id);
  const free: { off: number; size: number }[] = [];
  const live: { end: number; off: number; size: number }[] = [];
  const offsets = new Map<number, number>();
  let top = 0;
  const release = (blk: { off: number; size: number }): void => {
    free.push(blk);
    free.sort((a, b) => a.off - b.off);
    for (let i = 0; i + 1 < free.length; ) {
      const a = free[i]!;
      const b = free[i + 1]!;
      if (a.off + a.size === b.off) {
        a.size += b.size;
        free.splice(i + 1, 1);
      } else i++;
    }
    const last = free[free.length - 1];
    if (last && last.off + last.size === top) {
      top = last.off;
      free.pop();
    }
  };
  let peak = 0;
  for (const r of order) {
    for (let i = live.length - 1; i >= 0; i--) {
      if (live[i]!.end < r.start) release(live.splice(i, 1)[0]!);
    }
    const size = Math.max(alignment, alignUp(r.bytes, alignment));
    let best = -1;
    free.forEach((f, i) => {
      if (f.size >= size && (best < 0 || f.size < free[best]!.size)) best = i;
    });
    let off: number;
    if (best >= 0) {
      const f = free[best]!;
      off = f.off;
      if (f.size === size) free.splice(best, 1);
      else {
        f.off += size;
        f.size -= size;
      }
    } else {
      off = top;
      top += size;
    }
    peak = Math.max(peak, top);
    offsets.set(r.id, off);
    live.push({ end: r.end, off, size });
  }
  return { offsets, peak };
}

interface PlannedBuffer {
  readonly id: number;
  readonly value: Value;
  readonly space: SpaceName;
  readonly offset: number;
  readonly bytes: number;
}

export interface MemoryPlan {
  readonly buffers: ReadonlyMap<Value, PlannedBuffer>;
  /** Constants in weights-space order (weights.bin is an image of the weights space up to `fileBytes`). */
  readonly weights: readonly Value[];
  /** Bytes of the weights space before the first generated constant (all of it when none is). */
  readonly fileBytes: number;
  readonly spaces: Readonly<Record<SpaceName, number>>;
}

const valueBytes = (v: Value): number => numel(v.shape as number[]) * byteSize(v.dtype as DType);

/** Values an instruction reads and writes (views included as themselves). */
export function instrUses(i: LInstr): { reads: Value[]; writes: Value[] } {
  switch (i.op) {
    case 'kernel': {
      const writes = [...new Set([...i.kernel.writes, ...i.ref.outputs])];
      const w = new Set(writes);
      const args = i.kernel.args.flatMap((a) => (a.kind === 'value' ? [a.value] : []));
      const reads = [...new Set([...i.kernel.reads, ...i.ref.inputs, ...args.filter((v) => !w.has(v))])];
      return { reads, writes };
    }
    case 'gemm':
      return { reads: [...new Set([i.a.value, i.b.value, ...(i.bias ? [i.bias] : []), ...i.ref.inputs])], writes: [...new Set([i.out.value, ...i.ref.outputs])] };
    case 'copy':
    case 'shard_slice':
      return { reads: [i.src], writes: [i.dst] };
    case 'collective':
      return { reads: [i.send], writes: [i.recv] };
    case 'branch':
      return { reads: [i.cond], writes: [] };
  }
}

interface MemoryPlanOptions {
  /**
   * Constants the runtime generates (plan `weights.generated`): laid out after every other
   * constant, so weights.bin is the prefix of the weights space before them.
   */
  readonly generated?: (constant: Value) => boolean;
}

export function planMemory(lp: LoweredProgram, opts: MemoryPlanOptions = {}): MemoryPlan {
  const root = (v: Value): { value: Value; offset: number } => {
    let off = 0;
    let cur = v;
    for (let guard = 0; guard < 10000; guard++) {
      const a = lp.aliases.get(cur);
      if (!a) return { value: cur, offset: off };
      off += a.byteOffset;
      cur = a.of;
    }
    throw new Error(`memory plan: alias cycle at value '${v.name}'`);
  };
  const order: Value[] = [];
  const seen = new Set<Value>();
  const note = (v: Value): void => {
    if (seen.has(v)) return;
    seen.add(v);
    const r = root(v).value;
    if (r !== v) note(r);
    order.push(v);
  };
  lp.inputs.forEach((x) => note(x.value));
  lp.outputs.forEach((x) => note(x.value));
  lp.state.forEach((x) => note(x.input));

  // Times: one per instruction, regions numbered in order; `def`/`last` per root value.
  const first = new Map<Value, number>();
  const last = new Map<Value, number>();
  let t = 0;
  // An instruction on the communication stream runs concurrently with the compute instructions
  // after it until a stream-0 instruction waits for it (or for a later one on its stream): its
  // buffers stay live until that join, so nothing issued in between reuses their bytes.
  const extend = (vs: readonly Value[], until: number): void => {
    for (const v of vs) {
      const r = root(v).value;
      last.set(r, Math.max(last.get(r) ?? 0, until));
    }
  };
  const walk = (instrs: readonly LInstr[], enclosing: { start: number; end: number }[]): void => {
    const recordedAt = new Map<number, number>();
    const pending: { k: number; values: Value[] }[] = [];
    for (let k = 0; k < instrs.length; k++) {
      const i = instrs[k]!;
      const now = t++;
      if (i.sync?.record !== undefined) recordedAt.set(i.sync.record, k);
      if ((i.sync?.stream ?? 0) === 0) {
        for (const e of i.sync?.wait ?? []) {
          const p = recordedAt.get(e);
          if (p === undefined) continue;
          for (let j = pending.length - 1; j >= 0; j--) {
            if (pending[j]!.k <= p) extend(pending.splice(j, 1)[0]!.values, now);
          }
        }
      }
      const { reads, writes } = instrUses(i);
      if (i.sync?.stream === 1) pending.push({ k, values: [...reads, ...writes] });
      for (const v of [...reads, ...writes]) note(v);
      for (const v of writes) {
        const r = root(v).value;
        if (!first.has(r)) first.set(r, now);
      }
      for (const v of reads) {
        const r = root(v).value;
        if (!first.has(r)) first.set(r, now);
        let use = now;
        for (const b of enclosing) if ((first.get(r) ?? 0) < b.start) use = Math.max(use, b.end);
        last.set(r, Math.max(last.get(r) ?? 0, use));
      }
      if (i.op === 'branch') {
        const range = { start: now, end: now + countInstrs(i.then) + countInstrs(i.else) };
        walk(i.then, [...enclosing, range]);
        walk(i.else, [...enclosing, range]);
      }
    }
    // A well-formed list joins everything; be safe for one that does not.
    for (const p of pending) extend(p.values, t);
  };
  walk(lp.program, []);
  for (const v of order) if (!last.has(root(v).value)) last.set(root(v).value, first.get(root(v).value) ?? 0);

  const spaceOf = new Map<Value, SpaceName>();
  lp.inputs.forEach((x) => spaceOf.set(root(x.value).value, 'io'));
  lp.outputs.forEach((x) => spaceOf.set(root(x.value).value, 'io'));
  lp.state.forEach((x) => spaceOf.set(root(x.input).value, 'state'));
  const rootSpace = (r: Value): SpaceName => spaceOf.get(r) ?? (r.constant ? 'weights' : 'arena');

  const offsets = new Map<Value, number>();
  const tops: Record<SpaceName, number> = { weights: 0, io: 0, arena: 0, state: 0 };
  const weights: Value[] = [];
  const arenaRanges: LiveRange[] = [];
  const arenaRoots: Value[] = [];
  const generated: Value[] = [];
  for (const v of order) {
    const r = root(v).value;
    if (r !== v || offsets.has(r)) continue;
    const s = rootSpace(r);
    if (s === 'weights' && opts.generated?.(r)) {
      generated.push(r);
      offsets.set(r, -1);
      continue;
    }
    if (s === 'arena') {
      arenaRanges.push({ id: arenaRoots.length, bytes: valueBytes(r), start: first.get(r) ?? 0, end: last.get(r) ?? 0 });
      arenaRoots.push(r);
      offsets.set(r, -1);
      continue;
    }
    offsets.set(r, tops[s]);
    tops[s] = alignUp(tops[s] + Math.max(1, valueBytes(r)));
    if (s === 'weights') weights.push(r);
  }
  for (const r of generated) {
    offsets.set(r, tops.weights);
    tops.weights = alignUp(tops.weights + Math.max(1, valueBytes(r)));
    weights.push(r);
  }
  const arena = planArena(arenaRanges);
  arenaRoots.forEach((r, i) => offsets.set(r, arena.offsets.get(i)!));
  tops.arena = arena.peak;

  const buffers = new Map<Value, PlannedBuffer>();
  order.forEach((v) => {
    const r = root(v);
    buffers.set(v, { id: buffers.size, value: v, space: rootSpace(r.value), offset: offsets.get(r.value)! + r.offset, bytes: valueBytes(v) });
  });
  return { buffers, weights, fileBytes: generated.length > 0 ? offsets.get(generated[0]!)! : tops.weights, spaces: tops };
}

function countInstrs(instrs: readonly LInstr[]): number {
  let n = 0;
  for (const i of instrs) n += 1 + (i.op === 'branch' ? countInstrs(i.then) + countInstrs(i.else) : 0);
  return n;
}
