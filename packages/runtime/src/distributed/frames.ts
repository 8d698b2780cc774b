/**
 * The control channel's wire format: length-prefixed, typed frames.
 *
 *   u32 BE  length of what follows
 *   u8      frame type (FRAME_CODES)
 *   u32 BE  header length, then the header as UTF-8 JSON (typed per frame type: FrameHeaders)
 *   ...     body bytes (an op's payload; empty for most frames)
 *
 * FrameReader reassembles frames from socket chunks and refuses bytes that cannot be a frame of
 * this protocol (another program answering on the port) instead of waiting for a huge "length".
 */

export const PROTOCOL = 'paradit-control/1';

/** Header of each frame type. */
export interface FrameHeaders {
  /** member -> hub, first frame: who this is and what it was started as. */
  hello: { proto: string; rank: number; world: number; fingerprint: string; describe: string; pid: number };
  /** hub -> member: every rank joined and agreed; the job starts. */
  welcome: Record<string, never>;
  /** hub -> member: the ranks do not form one job (the message says why); exit 2. */
  refuse: { message: string };
  heartbeat: Record<string, never>;
  /** A rank failed (member -> hub, then hub -> every member). */
  failure: { rank: number; message: string };
  /** member -> hub: this rank reached op `seq` (`key` names it); the body is its contribution. */
  op: { seq: number; key: string };
  /** hub -> member: op `seq` completed; the body is this rank's result. */
  'op-done': { seq: number };
  /** member -> hub: clean end, the connection closing next is not a death. */
  bye: Record<string, never>;
}

export type FrameType = keyof FrameHeaders;

const FRAME_CODES: { readonly [K in FrameType]: number } = {
  hello: 1,
  welcome: 2,
  refuse: 3,
  heartbeat: 4,
  failure: 5,
  op: 6,
  'op-done': 7,
  bye: 8,
};

const TYPE_OF = new Map<number, FrameType>(Object.entries(FRAME_CODES).map(([k, v]) => [v, k as FrameType]));

export type Frame = { [K in FrameType]: { readonly type: K; readonly header: FrameHeaders[K]; readonly body: Uint8Array } }[FrameType];

/** Largest frame accepted (a collective's payload of a tiny CPU model is far below). */
const MAX_FRAME_BYTES = 1 << 30;

export function encodeFrame<K extends FrameType>(type: K, header: FrameHeaders[K], body: Uint8Array = new Uint8Array(0)): Buffer {
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const out = Buffer.allocUnsafe(4 + 1 + 4 + h.length + body.byteLength);
  out.writeUInt32BE(1 + 4 + h.length + body.byteLength, 0);
  out.writeUInt8(FRAME_CODES[type], 4);
  out.writeUInt32BE(h.length, 5);
  h.copy(out, 9);
  out.set(body, 9 + h.length);
  return out;
}

export class FrameError extends Error {}

/** Reassembles frames from a byte stream. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  /** Appends a chunk; returns the frames it completed. Throws FrameError on bytes of another protocol. */
  push(chunk: Uint8Array): Frame[] {
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
    const frames: Frame[] = [];
    for (;;) {
      if (this.buf.length < 5) return frames;
      const len = this.buf.readUInt32BE(0);
      const type = TYPE_OF.get(this.buf.readUInt8(4));
      if (type === undefined || len < 5 || len > MAX_FRAME_BYTES) throw new FrameError(`not a ${PROTOCOL} frame (type byte ${this.buf.readUInt8(4)}, length ${len})`);
      if (this.buf.length < 4 + len) return frames;
      const hlen = this.buf.readUInt32BE(5);
      if (hlen > len - 5) throw new FrameError(`frame header of ${hlen} bytes does not fit its frame of ${len}`);
      let header: unknown;
      try {
        header = JSON.parse(this.buf.subarray(9, 9 + hlen).toString('utf8'));
      } catch {
        throw new FrameError(`frame '${type}' has a header that is not JSON`);
      }
      if (typeof header !== 'object' || header === null) throw new FrameError(`frame '${type}' has a header that is not an object`);
      const body = new Uint8Array(this.buf.subarray(9 + hlen, 4 + len));
      frames.push({ type, header, body: body.slice() } as Frame);
      this.buf = this.buf.subarray(4 + len);
    }
  }
}

/** Packs byte arrays into one (u32 count, then u32 length + bytes each). */
export function packParts(parts: readonly Uint8Array[]): Uint8Array {
  const total = 4 + parts.reduce((s, p) => s + 4 + p.byteLength, 0);
  const out = Buffer.allocUnsafe(total);
  out.writeUInt32BE(parts.length, 0);
  let at = 4;
  for (const p of parts) {
    out.writeUInt32BE(p.byteLength, at);
    out.set(p, at + 4);
    at += 4 + p.byteLength;
  }
  return new Uint8Array(out);
}

export function unpackParts(bytes: Uint8Array): Uint8Array[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = b.readUInt32BE(0);
  const out: Uint8Array[] = [];
  let at = 4;
  for (let i = 0; i < n; i++) {
    const len = b.readUInt32BE(at);
    out.push(new Uint8Array(b.subarray(at + 4, at + 4 + len)));
    at += 4 + len;
  }
  return out;
}
