/**
 * The stream and event rules of plan version 2 (schema.ts, "Streams and events"), checked by the
 * compiler before it writes a plan and by the loader before a backend runs one. A plan that breaks
 * them could race (communication reading a buffer before it is written) or leave a stream unjoined
 * at the end of a captured region, so the runtime refuses it instead of guessing.
 */
import type { BufferDecl, Instr, Plan } from './schema';

/** Returns the first rule a program breaks (a sentence naming the instruction), or undefined. */
export function streamRuleViolation(program: readonly Instr[], events: number): string | undefined {
  const recordedBy = new Map<number, string>();
  const visit = (list: readonly Instr[], where: string): string | undefined => {
    // Per list: events recorded so far (and on which stream), events joined into stream 0.
    const here = new Map<number, { stream: number; index: number }>();
    const joined = new Set<number>();
    for (let i = 0; i < list.length; i++) {
      const ins = list[i]!;
      const at = `instruction ${where}${i} (${ins.op}${ins.origin.length ? ` from ${ins.origin.slice(0, 2).join(', ')}` : ''})`;
      const stream = ins.stream ?? 0;
      if (ins.op === 'branch' && stream !== 0) return `${at} is a branch on stream ${stream}; branches run on stream 0`;
      let forked = stream === 0;
      for (const e of ins.wait ?? []) {
        const r = here.get(e);
        if (!r) return `${at} waits for event ${e}, which no earlier instruction of the same list records`;
        if (r.stream === 0) forked = true;
        if (stream === 0) joined.add(e);
      }
      if (!forked) return `${at} runs on stream ${stream} without waiting for a stream-0 event, so its inputs may not be ready`;
      if (ins.record !== undefined) {
        const e = ins.record;
        if (!Number.isInteger(e) || e < 0 || e >= events) return `${at} records event ${e}, outside the plan's ${events} events`;
        const prev = recordedBy.get(e);
        if (prev) return `${at} records event ${e}, already recorded by ${prev}`;
        recordedBy.set(e, at);
        here.set(e, { stream, index: i });
      }
      if (ins.op === 'branch') {
        const t = visit(ins.then, `${where}${i}.then.`);
        if (t) return t;
        const f = visit(ins.else, `${where}${i}.else.`);
        if (f) return f;
      }
    }
    // Every side-stream instruction must be joined: its own event, or a later one on its stream.
    for (let i = 0; i < list.length; i++) {
      const ins = list[i]!;
      const stream = ins.stream ?? 0;
      if (stream === 0) continue;
      const later = [...here.entries()].filter(([, r]) => r.stream === stream && r.index >= i);
      if (!later.some(([e]) => joined.has(e))) {
        return `instruction ${where}${i} (${ins.op}) on stream ${stream} is never joined back into stream 0 in its list (no later stream-0 wait on its event)`;
      }
    }
    return undefined;
  };
  return visit(program, '');
}

/** Every instruction of a program, regions included, in order (with its position string). */
export function* walkInstrs(program: readonly Instr[], where = ''): Generator<[Instr, string]> {
  for (let i = 0; i < program.length; i++) {
    const ins = program[i]!;
    yield [ins, `${where}${i}`];
    if (ins.op === 'branch') {
      yield* walkInstrs(ins.then, `${where}${i}.then.`);
      yield* walkInstrs(ins.else, `${where}${i}.else.`);
    }
  }
}

interface ByteRange {
  readonly space: string;
  readonly start: number;
  readonly end: number;
  readonly buf: number;
}

/** Buffers an instruction reads and writes, as byte ranges (a kernel's args count as reads unless its ref writes them). */
function rangesOf(ins: Instr, byId: ReadonlyMap<number, BufferDecl>): { reads: ByteRange[]; writes: ByteRange[] } {
  const r = (id: number): ByteRange => {
    const b = byId.get(id);
    return b ? { space: b.space, start: b.offset, end: b.offset + b.bytes, buf: id } : { space: '?', start: 0, end: 0, buf: id };
  };
  const reads: number[] = [];
  const writes: number[] = [];
  switch (ins.op) {
    case 'kernel':
      writes.push(...(ins.ref?.outputs ?? []));
      reads.push(...(ins.ref?.inputs ?? []), ...ins.args.flatMap((a) => ('buf' in a && !writes.includes(a.buf) ? [a.buf] : [])));
      break;
    case 'gemm':
      reads.push(ins.a.buf, ins.b.buf, ...(ins.bias !== undefined ? [ins.bias] : []), ...(ins.scaleA !== undefined ? [ins.scaleA] : []), ...(ins.scaleB !== undefined ? [ins.scaleB] : []));
      writes.push(ins.out.buf);
      break;
    case 'copy':
    case 'shard_slice':
      reads.push(ins.src);
      writes.push(ins.dst);
      break;
    case 'collective':
      reads.push(ins.send);
      writes.push(ins.recv);
      break;
    case 'branch': {
      // Everything its regions touch.
      const sub = [...ins.then, ...ins.else].map((y) => rangesOf(y, byId));
      return { reads: [r(ins.cond), ...sub.flatMap((x) => x.reads)], writes: sub.flatMap((x) => x.writes) };
    }
  }
  return { reads: reads.map(r), writes: writes.map(r) };
}

const overlap = (a: readonly ByteRange[], b: readonly ByteRange[]): [ByteRange, ByteRange] | undefined => {
  for (const x of a) for (const y of b) if (x.space === y.space && x.start < y.end && y.start < x.end) return [x, y];
  return undefined;
};

/**
 * A data race between the streams, if the plan has one: an instruction issued while a stream-1
 * instruction is in flight (after it, before the stream-0 wait that joins it) that writes bytes
 * the stream-1 instruction reads or writes, or reads bytes it writes. The memory planner keeps
 * such buffers apart and the scheduler orders dependent work after the join; this checks both.
 */
export function streamHazard(plan: Pick<Plan, 'program' | 'buffers'>): string | undefined {
  const byId = new Map(plan.buffers.map((b) => [b.id, b]));
  const visit = (list: readonly Instr[], where: string): string | undefined => {
    const recordedAt = new Map<number, number>();
    const inFlight: { k: number; ins: Instr; reads: ByteRange[]; writes: ByteRange[] }[] = [];
    for (let k = 0; k < list.length; k++) {
      const ins = list[k]!;
      const stream = ins.stream ?? 0;
      if (stream === 0) {
        for (const e of ins.wait ?? []) {
          const p = recordedAt.get(e);
          if (p === undefined) continue;
          for (let j = inFlight.length - 1; j >= 0; j--) if (inFlight[j]!.k <= p) inFlight.splice(j, 1);
        }
      }
      if (ins.record !== undefined) recordedAt.set(ins.record, k);
      const mine = rangesOf(ins, byId);
      if (stream === 0) {
        for (const c of inFlight) {
          const hit = overlap(mine.writes, [...c.reads, ...c.writes]) ?? overlap(mine.reads, c.writes);
          if (hit) {
            return `instruction ${where}${k} (${ins.op} from ${ins.origin.slice(0, 2).join(', ')}) touches buffer ${hit[0].buf} while instruction ${where}${c.k} (${c.ins.op} on stream 1, from ${c.ins.origin.slice(0, 2).join(', ')}) may still use buffer ${hit[1].buf} at the same bytes`;
          }
        }
      } else inFlight.push({ k, ins, ...mine });
      if (ins.op === 'branch') {
        const t = visit(ins.then, `${where}${k}.then.`) ?? visit(ins.else, `${where}${k}.else.`);
        if (t) return t;
      }
    }
    return undefined;
  };
  return visit(plan.program, '');
}
