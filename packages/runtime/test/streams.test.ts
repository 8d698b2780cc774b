/**
 * The plan's stream and event rules (streamRuleViolation) and the cross-stream race check
 * (streamHazard) on hand-written programs: what a correct fork/join looks like, and each way a
 * broken one is named.
 */
import { streamHazard, streamRuleViolation } from '@paradit/runtime';
import type { BufferDecl, Instr } from '@paradit/runtime';

const buf = (id: number, offset: number, bytes = 256): BufferDecl => ({ id, name: `b${id}`, dtype: 'f32', shape: [bytes / 4], space: 'arena', offset, bytes });
const buffers = [buf(0, 0), buf(1, 256), buf(2, 512), buf(3, 768), buf(4, 256) /* aliases b1's bytes */];
const copy = (src: number, dst: number, extra: Partial<Instr> = {}): Instr => ({ op: 'copy', src, dst, origin: [`copy ${src}->${dst}`], ...extra }) as Instr;
const send = (s: number, r: number, extra: Partial<Instr> = {}): Instr =>
  ({ op: 'collective', collective: 'send_recv', meshAxis: 'ring', groupSize: 2, send: s, recv: r, shift: 1, origin: ['ring send'], ...extra }) as Instr;

describe('stream rules', () => {
  // b0 -> b1 on stream 0; b1 sent into b2 on stream 1 while b0 -> b3 runs; then b2 is read.
  const good: Instr[] = [copy(0, 1, { record: 0 }), send(1, 2, { stream: 1, wait: [0], record: 1 }), copy(0, 3), copy(2, 3, { wait: [1] })];
  it('a fork/join program passes both checks', () => {
    expect(streamRuleViolation(good, 2)).toBeUndefined();
    expect(streamHazard({ program: good, buffers })).toBeUndefined();
  });
  it('a side-stream instruction must wait for stream 0', () => {
    const p = [copy(0, 1), send(1, 2, { stream: 1, record: 0 }), copy(2, 3, { wait: [0] })];
    expect(streamRuleViolation(p, 1)).toMatch(/instruction 1 \(collective from ring send\) runs on stream 1 without waiting for a stream-0 event/);
  });
  it('a side-stream instruction must be joined in its own list', () => {
    const p = [copy(0, 1, { record: 0 }), send(1, 2, { stream: 1, wait: [0], record: 1 }), copy(0, 3)];
    expect(streamRuleViolation(p, 2)).toMatch(/never joined back into stream 0/);
  });
  it('events are recorded once, within range, and waited in the same list', () => {
    expect(streamRuleViolation([copy(0, 1, { record: 0 }), copy(1, 2, { record: 0 })], 1)).toMatch(/already recorded/);
    expect(streamRuleViolation([copy(0, 1, { record: 3 })], 1)).toMatch(/outside the plan's 1 events/);
    const branch: Instr = { op: 'branch', cond: 0, then: [copy(0, 1, { wait: [0] })], else: [], origin: ['gate'] };
    expect(streamRuleViolation([copy(0, 1, { record: 0 }), branch], 1)).toMatch(/instruction 1\.then\.0 .* waits for event 0, which no earlier instruction of the same list records/);
    expect(streamRuleViolation([{ ...branch, then: [], stream: 1 } as Instr], 0)).toMatch(/is a branch on stream 1/);
  });
});

describe('cross-stream races', () => {
  it('a write into bytes an in-flight send reads', () => {
    const p = [copy(0, 1, { record: 0 }), send(1, 2, { stream: 1, wait: [0], record: 1 }), copy(3, 4), copy(2, 3, { wait: [1] })];
    expect(streamHazard({ program: p, buffers })).toMatch(/instruction 2 \(copy from copy 3->4\) touches buffer 4 while instruction 1 \(collective on stream 1, from ring send\) may still use buffer 1/);
  });
  it('a read of bytes an in-flight send writes', () => {
    const p = [copy(0, 1, { record: 0 }), send(1, 2, { stream: 1, wait: [0], record: 1 }), copy(2, 3), copy(2, 0, { wait: [1] })];
    expect(streamHazard({ program: p, buffers })).toMatch(/touches buffer 2 while instruction 1/);
  });
  it('after the join the bytes are free again', () => {
    const p = [copy(0, 1, { record: 0 }), send(1, 2, { stream: 1, wait: [0], record: 1 }), copy(2, 3, { wait: [1] }), copy(3, 4)];
    expect(streamHazard({ program: p, buffers })).toBeUndefined();
  });
});
