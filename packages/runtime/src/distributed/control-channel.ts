/**
 * The control channel of one launched job: a TCP star on the derived control port (env.ts), rank
 * 0 the hub, every other rank a member that connects with retry until the timeout. Not a cluster
 * manager: the launcher made the ranks; the channel only
 *   - checks that they form one job (hello: same world, distinct ranks, same command), else every
 *     rank exits 2 with the reason;
 *   - carries failure news: a rank's own report, a closed connection (killed, crashed), silence
 *     (no heartbeat for the timeout: hung, host gone), an op that some rank never reached within
 *     the timeout, ranks at different ops; the first failure wins and reaches every rank;
 *   - runs ops: every rank contributes bytes to op `seq` (named by `key`, which must agree), the
 *     hub combines them and answers each rank. Barriers, rank 0 gathering, and the CPU backend's
 *     collectives (tcp-collectives.ts) are ops.
 * It implements RankWatch for the backends. Everything runs on the event loop: a rank blocked in
 * a synchronous wait (a CUDA step) sees news when it returns; heartbeats checked after such a
 * stall are not counted against the peers.
 */
import net from 'node:net';
import { IrError } from '@paradit/ir';
import type { LaunchEnv, RankWatch } from './types';
import { RankFailure } from './types';
import { controlAddress } from './env';
import { FrameError, FrameReader, PROTOCOL, encodeFrame, packParts, unpackParts } from './frames';
import type { Frame, FrameHeaders, FrameType } from './frames';

/** Runs on the hub when every rank arrived at an op: inputs[r] is rank r's bytes; returns each rank's result. */
type Combiner = (inputs: readonly Uint8Array[]) => readonly Uint8Array[];

interface ControlChannelOptions {
  readonly env: LaunchEnv;
  /** Joining, every op, and peer silence are bounded by this. */
  readonly timeoutMs: number;
  /** Ranks must agree on it (a hash of the command line: every rank runs the same command). */
  readonly fingerprint: string;
  readonly heartbeatMs?: number;
  readonly log?: (line: string) => void;
}

interface Peer {
  readonly socket: net.Socket;
  lastHeard: number;
  bye: boolean;
  closed: boolean;
  rank: number | undefined;
  pid?: number;
}

interface HubOp {
  readonly seq: number;
  readonly key: string;
  readonly since: number;
  readonly inputs: Map<number, Uint8Array>;
  combine?: Combiner;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const NO_BYTES = new Uint8Array(0);

function send<K extends FrameType>(p: Peer | undefined, type: K, header: FrameHeaders[K], body?: Uint8Array): void {
  if (!p || p.closed || p.socket.destroyed) return;
  try {
    p.socket.write(encodeFrame(type, header, body));
  } catch {
    /* a closing socket: its close event reports the peer */
  }
}

export class ControlChannel implements RankWatch {
  readonly rank: number;
  readonly world: number;
  readonly timeoutMs: number;
  private readonly hbMs: number;
  private readonly host: string;
  private readonly port: number;
  private failed: { rank: number; message: string } | undefined;
  private seq = 0;
  private pending: { seq: number; key: string; since: number; resolve: (b: Uint8Array) => void; reject: (e: Error) => void } | undefined;
  private closing = false;
  private timer: NodeJS.Timeout | undefined;
  private lastTick = 0;
  private server: net.Server | undefined;
  private readonly peers: Peer[] = [];
  private readonly members = new Map<number, Peer>();
  private op: HubOp | undefined;
  private hub: Peer | undefined;

  private constructor(private readonly opts: ControlChannelOptions) {
    this.rank = opts.env.rank;
    this.world = opts.env.world;
    this.timeoutMs = opts.timeoutMs;
    this.hbMs = opts.heartbeatMs ?? 1000;
    const addr = controlAddress(opts.env);
    if (!addr) throw new IrError('E_INPUT', `${opts.env.describe}: no control address (set MASTER_ADDR and MASTER_PORT, or PARADIT_CONTROL_ADDR=host:port)`);
    this.host = addr.host.replace(/^\[(.*)\]$/, '$1');
    this.port = addr.port;
  }

  /** Joins the job's channel: rank 0 serves and waits for every rank, the others connect. */
  static async open(opts: ControlChannelOptions): Promise<ControlChannel> {
    const c = new ControlChannel(opts);
    try {
      if (c.rank === 0) await c.serve();
      else await c.join();
    } catch (e) {
      await c.close();
      throw e;
    }
    c.lastTick = performance.now();
    c.timer = setInterval(() => c.tick(), c.hbMs);
    c.timer.unref();
    return c;
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** The first failure of the job (this rank's own included), once known. */
  get failure(): { readonly rank: number; readonly message: string } | undefined {
    return this.failed;
  }

  peerFailure(): string | undefined {
    const f = this.failed;
    return f && f.rank !== this.rank ? `rank ${f.rank} failed: ${f.message}` : undefined;
  }

  reportFailure(message: string): void {
    this.fail(this.rank, message);
  }

  /** The error a rank throws once the job failed. */
  failureError(): RankFailure {
    const f = this.failed!;
    return f.rank === this.rank ? new RankFailure(`rank ${f.rank} failed: ${f.message}`, f.rank) : new RankFailure(`rank ${this.rank} stopped because rank ${f.rank} failed: ${f.message}`, f.rank);
  }

  /** Every rank contributes `bytes` to the op named `key`; resolves with this rank's result. */
  exchange(key: string, bytes: Uint8Array, combine: Combiner): Promise<Uint8Array> {
    if (this.failed) return Promise.reject(this.failureError());
    if (this.pending) return Promise.reject(new Error(`control channel: op '${key}' started while op '${this.pending.key}' is in flight`));
    const seq = ++this.seq;
    const p = new Promise<Uint8Array>((resolve, reject) => {
      this.pending = { seq, key, since: performance.now(), resolve, reject };
    });
    if (this.rank === 0) this.arrive(0, seq, key, bytes, combine);
    else send(this.hub, 'op', { seq, key }, bytes);
    return p;
  }

  /** Every rank waits until all arrived. */
  async barrier(name: string): Promise<void> {
    await this.exchange(`barrier '${name}'`, NO_BYTES, (ins) => ins.map(() => NO_BYTES));
  }

  /** Rank 0 gets every rank's bytes (rank order); the others undefined. */
  async gather(name: string, bytes: Uint8Array): Promise<Uint8Array[] | undefined> {
    const r = await this.exchange(`gather '${name}'`, bytes, (ins) => ins.map((_, i) => (i === 0 ? packParts(ins) : NO_BYTES)));
    return this.rank === 0 ? unpackParts(r) : undefined;
  }

  /**
   * Every rank states `value`; when they differ, every rank throws IrError E_INPUT with
   * `explain(rank, value, rank0Value)` of the first that differs from rank 0.
   */
  async agree(name: string, value: string, explain: (rank: number, value: string, rank0: string) => string): Promise<void> {
    const r = await this.exchange(`agree '${name}'`, Buffer.from(value, 'utf8'), (ins) => {
      const vals = ins.map((b) => Buffer.from(b).toString('utf8'));
      const other = vals.findIndex((v) => v !== vals[0]);
      const msg = Buffer.from(other < 0 ? '' : explain(other, vals[other]!, vals[0]!), 'utf8');
      return ins.map(() => msg);
    });
    if (r.byteLength > 0) throw new IrError('E_INPUT', Buffer.from(r).toString('utf8'));
  }

  /** Ends this rank's part: members say bye and close; the hub waits (bounded) for them, then closes. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    const waitClosed = (ps: Peer[], ms: number) =>
      new Promise<void>((resolve) => {
        const left = ps.filter((p) => !p.closed);
        if (left.length === 0) return resolve();
        const t = setTimeout(resolve, ms);
        t.unref();
        let n = left.length;
        for (const p of left) p.socket.once('close', () => --n === 0 && (clearTimeout(t), resolve()));
      });
    if (this.hub) {
      send(this.hub, 'bye', {});
      this.hub.socket.end();
      await waitClosed([this.hub], 1000);
      this.hub.socket.destroy();
    }
    if (this.server) {
      // After a failure a member may be hung or dead: do not wait long for it.
      await waitClosed(this.peers, this.failed ? 300 : 2000);
      for (const p of this.peers) p.socket.destroy();
      await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    }
  }

  // ---- failures -------------------------------------------------------------------------------

  private fail(rank: number, message: string): void {
    if (this.failed || this.closing) return;
    this.failed = { rank, message };
    this.opts.log?.(rank === this.rank ? `failed: ${message}` : `rank ${rank} failed: ${message}`);
    if (this.rank === 0) for (const p of this.members.values()) send(p, 'failure', { rank, message });
    else if (rank === this.rank) send(this.hub, 'failure', { rank, message });
    const p = this.pending;
    this.pending = undefined;
    this.op = undefined;
    p?.reject(this.failureError());
  }

  private tick(): void {
    const now = performance.now();
    const late = now - this.lastTick > 2 * this.hbMs + 250;
    this.lastTick = now;
    const peers = this.rank === 0 ? [...this.members.values()] : this.hub ? [this.hub] : [];
    // After a stall of this thread, the peers' heartbeats are still unread: do not count it.
    if (late) for (const p of peers) p.lastHeard = now;
    for (const p of peers) send(p, 'heartbeat', {});
    if (this.failed) return;
    const silence = Math.max(this.timeoutMs, 3 * this.hbMs);
    for (const p of peers) {
      if (!p.bye && !p.closed && now - p.lastHeard > silence) {
        return this.fail(p.rank ?? 0, `stopped responding: no heartbeat for ${seconds(now - p.lastHeard)} (hung, or its host is unreachable)`);
      }
    }
    const op = this.op;
    if (op && now - op.since > this.timeoutMs) {
      const missing = Array.from({ length: this.world }, (_, r) => r).filter((r) => !op.inputs.has(r));
      const waiting = [...op.inputs.keys()].sort((a, b) => a - b);
      return this.fail(missing[0]!, `did not reach ${op.key} within ${seconds(this.timeoutMs)}, where rank${waiting.length > 1 ? 's' : ''} ${waiting.join(', ')} waited${missing.length > 1 ? ` (nor did ranks ${missing.slice(1).join(', ')})` : ''}`);
    }
    const mine = this.pending;
    if (mine && this.rank !== 0 && now - mine.since > this.timeoutMs + silence) {
      this.fail(0, `did not complete ${mine.key} within ${seconds(now - mine.since)}`);
    }
  }

  // ---- the hub (rank 0) -----------------------------------------------------------------------

  private arrive(rank: number, seq: number, key: string, body: Uint8Array, combine?: Combiner): void {
    if (this.failed) return;
    if (!this.op) this.op = { seq, key, since: performance.now(), inputs: new Map() };
    const op = this.op;
    if (op.seq !== seq || op.key !== key || op.inputs.has(rank)) {
      const other = [...op.inputs.keys()][0] ?? 0;
      return this.fail(rank, `reached ${key} (op ${seq}) while rank ${other} is at ${op.key} (op ${op.seq}); every rank must run the same program`);
    }
    op.inputs.set(rank, body);
    if (combine) op.combine = combine;
    if (op.inputs.size < this.world) return;
    this.op = undefined;
    let results: readonly Uint8Array[];
    try {
      results = op.combine!(Array.from({ length: this.world }, (_, r) => op.inputs.get(r)!));
    } catch (e) {
      return this.fail(0, `${op.key}: ${(e as Error).message}`);
    }
    for (const [r, p] of this.members) send(p, 'op-done', { seq }, results[r]);
    const mine = this.pending;
    this.pending = undefined;
    mine?.resolve(results[0]!);
  }

  private serve(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let refused: string | undefined;
      let started = false;
      const server = net.createServer((socket) => this.accept(socket, (why) => refuse(why), () => maybeStart()));
      this.server = server;
      const refuse = (why: string) => {
        if (refused) return;
        refused = why;
        clearTimeout(deadline);
        for (const p of this.peers) send(p, 'refuse', { message: why });
        // Ranks still connecting get the refusal too, for a moment.
        setTimeout(() => reject(new IrError('E_INPUT', why)), 1000);
      };
      this.refuseLate = () => refused;
      const maybeStart = () => {
        if (started || refused || this.members.size < this.world - 1) return;
        started = true;
        clearTimeout(deadline);
        for (const p of this.members.values()) send(p, 'welcome', {});
        resolve();
      };
      const deadline = setTimeout(() => {
        if (started || refused) return;
        const missing = Array.from({ length: this.world - 1 }, (_, i) => i + 1).filter((r) => !this.members.has(r));
        const why = `never joined the control channel: rank 0 waited ${seconds(this.timeoutMs)} on port ${this.port} for rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')}; they did not start, failed first, or cannot reach ${this.address} (${this.opts.env.describe})`;
        this.fail(missing[0]!, why);
        reject(this.failureError());
      }, this.timeoutMs);
      server.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(deadline);
        reject(
          new IrError(
            'E_INPUT',
            `rank 0 cannot listen on port ${this.port} for the control channel (${e.code ?? e.message}: another program or an earlier job holds it); start the launch with another MASTER_PORT, or set PARADIT_CONTROL_ADDR=host:port`,
          ),
        );
      });
      server.listen(this.port);
    });
  }

  private refuseLate: () => string | undefined = () => undefined;

  private accept(socket: net.Socket, refuse: (why: string) => void, joined: () => void): void {
    socket.setNoDelay(true);
    const peer: Peer = { socket, lastHeard: performance.now(), bye: false, closed: false, rank: undefined };
    this.peers.push(peer);
    const reader = new FrameReader();
    socket.on('data', (chunk) => {
      let frames: Frame[];
      try {
        frames = reader.push(chunk);
      } catch (e) {
        this.opts.log?.(`control channel: dropped a connection from ${socket.remoteAddress}: ${(e as Error).message}`);
        socket.destroy();
        return;
      }
      peer.lastHeard = performance.now();
      for (const f of frames) this.onMemberFrame(peer, f, refuse, joined);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      peer.closed = true;
      if (peer.rank !== undefined && !peer.bye && this.members.get(peer.rank) === peer) {
        this.fail(peer.rank, 'its process died: its control connection closed without a failure report (killed, crashed, or exited)');
      }
    });
  }

  private onMemberFrame(peer: Peer, f: Frame, refuse: (why: string) => void, joined: () => void): void {
    if (f.type === 'hello') {
      const h = f.header;
      const late = this.refuseLate();
      if (late) return send(peer, 'refuse', { message: late });
      const env = this.opts.env;
      let why: string | undefined;
      if (h.proto !== PROTOCOL) why = `rank ${h.rank} speaks ${h.proto}, rank 0 ${PROTOCOL}; every rank must run the same ParaDiT`;
      else if (h.world !== this.world) {
        why = `rank ${h.rank} was started in a world of ${h.world} (${h.describe}), rank 0 in a world of ${this.world} (${env.describe}); every rank must come from one launch`;
      } else if (!Number.isInteger(h.rank) || h.rank < 1 || h.rank >= this.world) why = `a process claims rank ${h.rank} (${h.describe}), outside 1..${this.world - 1}`;
      else if (this.members.has(h.rank)) why = `two processes claim rank ${h.rank} (pids ${this.members.get(h.rank)!.pid} and ${h.pid}); check the launcher's arguments`;
      else if (h.fingerprint !== this.opts.fingerprint) why = `rank ${h.rank} was started with another command than rank 0; every rank must run the same command with the same arguments`;
      if (why) {
        send(peer, 'refuse', { message: why });
        return refuse(why);
      }
      peer.rank = h.rank;
      peer.pid = h.pid;
      this.members.set(h.rank, peer);
      return joined();
    }
    if (peer.rank === undefined) return;
    switch (f.type) {
      case 'heartbeat':
        return;
      case 'failure':
        return this.fail(f.header.rank, f.header.message);
      case 'op':
        return this.arrive(peer.rank, f.header.seq, f.header.key, f.body);
      case 'bye':
        peer.bye = true;
        return;
      default:
        return;
    }
  }

  // ---- a member (rank > 0) --------------------------------------------------------------------

  private join(): Promise<void> {
    const env = this.opts.env;
    const t0 = performance.now();
    return new Promise<void>((resolve, reject) => {
      let lastError = 'no answer';
      let welcomed = false;
      const attempt = (delay: number) => {
        if (performance.now() - t0 > this.timeoutMs) {
          const why = `rank ${this.rank} could not join the control channel at ${this.address} within ${seconds(this.timeoutMs)} (${lastError}); rank 0 did not start, failed first, or is not reachable from this host (${env.describe})`;
          this.failed = { rank: 0, message: `never served the control channel (${lastError})` };
          return reject(new RankFailure(why, 0));
        }
        const socket = net.connect({ host: this.host, port: this.port });
        socket.setNoDelay(true);
        const peer: Peer = { socket, lastHeard: performance.now(), bye: false, closed: false, rank: 0 };
        const reader = new FrameReader();
        let refused = false;
        socket.on('connect', () => {
          send(peer, 'hello', { proto: PROTOCOL, rank: this.rank, world: this.world, fingerprint: this.opts.fingerprint, describe: env.describe, pid: process.pid });
        });
        socket.on('data', (chunk) => {
          let frames: Frame[];
          try {
            frames = reader.push(chunk);
          } catch (e) {
            lastError = `${this.address} answered with something else than a ParaDiT control channel: ${e instanceof FrameError ? e.message : String(e)}; another program uses the port`;
            socket.destroy();
            return;
          }
          peer.lastHeard = performance.now();
          for (const f of frames) {
            if (f.type === 'refuse') {
              refused = true;
              socket.destroy();
              return reject(new IrError('E_INPUT', f.header.message));
            }
            if (f.type === 'welcome') {
              welcomed = true;
              this.hub = peer;
              resolve();
            } else if (f.type === 'failure') {
              this.fail(f.header.rank, f.header.message);
              if (!welcomed) {
                socket.destroy();
                return reject(this.failureError());
              }
            } else if (f.type === 'op-done') this.done(f.header.seq, f.body);
          }
        });
        socket.on('error', (e: NodeJS.ErrnoException) => {
          lastError = e.code ?? e.message;
        });
        socket.on('close', () => {
          peer.closed = true;
          if (refused || this.failed) return;
          if (welcomed) {
            this.fail(0, 'its process died: its control connection closed without a failure report (killed, crashed, or exited)');
          } else setTimeout(() => attempt(Math.min(500, delay * 2)), delay);
        });
      };
      attempt(100);
    });
  }

  private done(seq: number, body: Uint8Array): void {
    const p = this.pending;
    if (!p || p.seq !== seq) return this.fail(0, `answered op ${seq}, but rank ${this.rank} waits at ${p ? `op ${p.seq} (${p.key})` : 'no op'}`);
    this.pending = undefined;
    p.resolve(body);
  }
}
