/**
 * The stream and event rules of plan version 2 (schema.ts, "Streams and events"), checked by the
 * compiler before it writes a plan and by the loader before a backend runs one. A plan that breaks
 * them could race (communication reading a buffer before it is written) or leave a stream unjoined
 * at the end of a captured region, so the runtime refuses it instead of guessing.
 */
import type { Instr } from './schema';

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
