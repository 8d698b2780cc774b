/**
 * The control channel (distributed/control-channel.ts) with W ranks in this process over real
 * localhost TCP: frames round-trip and garbage is refused; ops (barrier, gather, agree, exchange
 * with the hub's combiner) give every rank its result; a reported failure, a closed connection,
 * an op some rank never reaches, ranks at different ops and a mismatched world or command reach
 * every rank, naming the failed rank. The real multi-process runs are tests/cli/launch.test.ts.
 */
import net from 'node:net';
import { IrError } from '@paradit/ir';
import { ControlChannel } from '../src/distributed/control-channel';
import { FrameReader, encodeFrame, packParts, unpackParts } from '../src/distributed/frames';
import type { LaunchEnv } from '../src/distributed/types';
import { RankFailure } from '../src/distributed/types';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function envOf(rank: number, world: number, port: number): LaunchEnv {
  return { launcher: 'paradit', rank, world, localRank: rank, localWorld: world, bootstrap: undefined, control: `127.0.0.1:${port}`, describe: `test: rank ${rank} of ${world}` };
}

async function openAll(world: number, opts: { timeoutMs?: number; fingerprint?: (r: number) => string; worldOf?: (r: number) => number } = {}): Promise<ControlChannel[]> {
  const port = await freePort();
  return Promise.all(
    Array.from({ length: world }, (_, r) =>
      ControlChannel.open({ env: envOf(r, opts.worldOf?.(r) ?? world, port), timeoutMs: opts.timeoutMs ?? 5000, fingerprint: opts.fingerprint?.(r) ?? 'same', heartbeatMs: 100 }),
    ),
  );
}

const closeAll = (cs: readonly ControlChannel[]) => Promise.all(cs.map((c) => c.close()));

describe('frames', () => {
  it('round-trip in pieces and refuse bytes of another protocol', () => {
    const a = encodeFrame('op', { seq: 3, key: 'barrier x' }, new Uint8Array([1, 2, 3]));
    const b = encodeFrame('failure', { rank: 1, message: 'boom' });
    const both = Buffer.concat([a, b]);
    const r = new FrameReader();
    expect(r.push(both.subarray(0, 7))).toEqual([]);
    const frames = r.push(both.subarray(7));
    expect(frames.map((f) => [f.type, f.header, [...f.body]])).toEqual([
      ['op', { seq: 3, key: 'barrier x' }, [1, 2, 3]],
      ['failure', { rank: 1, message: 'boom' }, []],
    ]);
    expect(() => new FrameReader().push(Buffer.from('GET / HTTP/1.1\r\n'))).toThrow(/not a paradit-control\/1 frame/);
    expect(unpackParts(packParts([new Uint8Array([9]), new Uint8Array(0), new Uint8Array([7, 8])])).map((x) => [...x])).toEqual([[9], [], [7, 8]]);
  });
});

describe('control channel', () => {
  it('barrier, gather to rank 0, agree and a combining exchange', async () => {
    const cs = await openAll(3);
    try {
      await Promise.all(cs.map((c) => c.barrier('start')));
      const g = await Promise.all(cs.map((c) => c.gather('x', new Uint8Array([c.rank * 10]))));
      expect(g[0]!.map((b) => [...b])).toEqual([[0], [10], [20]]);
      expect(g.slice(1)).toEqual([undefined, undefined]);
      // Each rank gets the sum of all bytes plus its rank: computed once, on the hub.
      const sum = (ins: readonly Uint8Array[]) => ins.map((_, r) => new Uint8Array([ins.reduce((s, b) => s + b[0]!, 0) + r]));
      const x = await Promise.all(cs.map((c) => c.exchange('sum', new Uint8Array([c.rank + 1]), sum)));
      expect(x.map((b) => b[0])).toEqual([6, 7, 8]);
      await Promise.all(cs.map((c) => c.agree('plan', 'abc', () => 'unused')));
      const bad = await Promise.allSettled(cs.map((c) => c.agree('plan', c.rank === 2 ? 'xyz' : 'abc', (r, v, v0) => `rank ${r} has ${v}, rank 0 ${v0}`)));
      for (const b of bad) {
        expect(b.status).toBe('rejected');
        expect((b as PromiseRejectedResult).reason).toBeInstanceOf(IrError);
        expect(((b as PromiseRejectedResult).reason as Error).message).toBe('rank 2 has xyz, rank 0 abc');
      }
    } finally {
      await closeAll(cs);
    }
  });

  it("a rank's reported failure stops every rank waiting at an op, naming it", async () => {
    const cs = await openAll(3);
    try {
      const waits = [cs[0]!, cs[2]!].map((c) => c.barrier('step').catch((e: Error) => e));
      cs[1]!.reportFailure('bad input on this rank');
      const errs = await Promise.all(waits);
      expect(errs.map((e) => (e as Error).message)).toEqual([
        'rank 0 stopped because rank 1 failed: bad input on this rank',
        'rank 2 stopped because rank 1 failed: bad input on this rank',
      ]);
      expect(errs.every((e) => e instanceof RankFailure && e.failedRank === 1)).toBe(true);
      expect(cs[2]!.peerFailure()).toBe('rank 1 failed: bad input on this rank');
      await expect(cs[1]!.barrier('late')).rejects.toThrow('rank 1 failed: bad input on this rank');
    } finally {
      await closeAll(cs);
    }
  });

  it('a member whose connection closes (killed) and a dead hub are noticed', async () => {
    const cs = await openAll(3);
    const w = cs[0]!.barrier('a').catch((e: Error) => e.message);
    const w2 = cs[2]!.barrier('a').catch((e: Error) => e.message);
    (cs[1] as unknown as { hub: { socket: net.Socket } }).hub.socket.destroy();
    expect(await w).toMatch(/^rank 0 stopped because rank 1 failed: its process died: its control connection closed/);
    expect(await w2).toMatch(/^rank 2 stopped because rank 1 failed: its process died/);
    await closeAll(cs);
    const ds = await openAll(2);
    const m = ds[1]!.barrier('b').catch((e: Error) => e.message);
    for (const p of (ds[0] as unknown as { peers: { socket: net.Socket }[] }).peers) p.socket.destroy();
    expect(await m).toMatch(/^rank 1 stopped because rank 0 failed: its process died/);
    await closeAll(ds);
  });

  it('an op a rank never reaches times out naming it; ranks at different ops diverge', async () => {
    const cs = await openAll(3, { timeoutMs: 600 });
    try {
      const t0 = performance.now();
      const errs = await Promise.all([cs[0]!, cs[1]!].map((c) => c.barrier('step 1').catch((e: Error) => e.message)));
      expect(performance.now() - t0).toBeLessThan(3000);
      expect(errs[0]).toMatch(/^rank 0 stopped because rank 2 failed: did not reach barrier 'step 1' within 0\.6 s, where ranks 0, 1 waited$/);
      expect(errs[1]).toMatch(/^rank 1 stopped because rank 2 failed/);
    } finally {
      await closeAll(cs);
    }
    const ds = await openAll(2);
    try {
      const errs = await Promise.all([ds[0]!.barrier('x'), ds[1]!.barrier('y')].map((p) => p.catch((e: Error) => e.message)));
      expect(errs[0]).toMatch(/rank 1 failed: reached barrier 'y' \(op 1\) while rank 0 is at barrier 'x' \(op 1\); every rank must run the same program/);
    } finally {
      await closeAll(ds);
    }
  });

  it('refuses ranks of another world or command on every rank (exit 2), and times out a missing rank', async () => {
    const r = await Promise.allSettled([openAll(2, { worldOf: (r) => (r === 1 ? 3 : 2) })]);
    // openAll rejects with the first rank's error; every rank got IrError, checked below one by one.
    expect(r[0]!.status).toBe('rejected');
    const port = await freePort();
    const res = await Promise.allSettled([0, 1].map((rank) => ControlChannel.open({ env: envOf(rank, 2, port), timeoutMs: 3000, fingerprint: rank === 1 ? 'other' : 'same', heartbeatMs: 100 })));
    for (const x of res) {
      expect(x.status).toBe('rejected');
      const e = (x as PromiseRejectedResult).reason as Error;
      expect(e).toBeInstanceOf(IrError);
      expect(e.message).toBe('rank 1 was started with another command than rank 0; every rank must run the same command with the same arguments');
    }
    const port2 = await freePort();
    const res2 = await Promise.allSettled([0, 1].map((rank) => ControlChannel.open({ env: envOf(rank, rank === 1 ? 3 : 2, port2), timeoutMs: 3000, fingerprint: 's', heartbeatMs: 100 })));
    for (const x of res2) expect(((x as PromiseRejectedResult).reason as Error).message).toMatch(/^rank 1 was started in a world of 3 \(test: rank 1 of 3\), rank 0 in a world of 2/);
    const port3 = await freePort();
    const lone = await ControlChannel.open({ env: envOf(0, 3, port3), timeoutMs: 500, fingerprint: 's', heartbeatMs: 100 }).catch((e: Error) => e);
    expect(lone).toBeInstanceOf(RankFailure);
    expect((lone as Error).message).toMatch(/^rank 0 stopped because rank 1 failed: never joined the control channel: rank 0 waited 0\.5 s on port \d+ for ranks 1, 2; they did not start/);
    const port4 = await freePort();
    const orphan = await ControlChannel.open({ env: envOf(1, 2, port4), timeoutMs: 500, fingerprint: 's', heartbeatMs: 100 }).catch((e: Error) => e);
    expect((orphan as Error).message).toMatch(/^rank 1 could not join the control channel at 127\.0\.0\.1:\d+ within 0\.5 s \(ECONNREFUSED\)/);
  });
});
