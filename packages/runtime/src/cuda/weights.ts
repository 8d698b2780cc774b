/**
 * Streams weights.bin into the weights space in fixed-size chunks (files can exceed 2 GiB, more
 * than one Node buffer holds), checking its size against plan.json and, on request, its sha256
 * (hashed while streaming, so the file is read once).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { checkWeightsSha256 } from '../plan/load';
import type { Driver } from './driver';
import type { Ptr } from './ffi';

const WEIGHT_CHUNK_BYTES = 64 << 20;

interface UploadResult {
  readonly bytes: number;
  readonly ms: number;
  readonly sha256?: string;
}

export function uploadWeights(d: Driver, file: string, expectBytes: number, dst: Ptr, opts: { verifySha256?: string } = {}): UploadResult {
  const t0 = performance.now();
  if (expectBytes === 0) return { bytes: 0, ms: 0 };
  if (!fs.existsSync(file)) throw new Error(`${file}: missing; the plan declares ${expectBytes} bytes of weights`);
  const size = fs.statSync(file).size;
  if (size !== expectBytes) throw new Error(`${file}: ${size} bytes, but plan.json declares ${expectBytes}; the plan is incomplete or corrupt`);
  const hash = opts.verifySha256 ? crypto.createHash('sha256') : undefined;
  const chunk = Buffer.allocUnsafe(Math.min(WEIGHT_CHUNK_BYTES, size));
  const fd = fs.openSync(file, 'r');
  try {
    let pos = 0;
    while (pos < size) {
      const want = Math.min(chunk.length, size - pos);
      let got = 0;
      while (got < want) {
        const n = fs.readSync(fd, chunk, got, want - got, pos + got);
        if (n <= 0) throw new Error(`${file}: unexpected end of file at byte ${pos + got}`);
        got += n;
      }
      const view = chunk.subarray(0, want);
      hash?.update(view);
      d.htod(dst + BigInt(pos), view);
      pos += want;
    }
  } finally {
    fs.closeSync(fd);
  }
  const sha256 = hash?.digest('hex');
  if (opts.verifySha256) checkWeightsSha256(file, sha256!, opts.verifySha256);
  return { bytes: size, ms: performance.now() - t0, ...(sha256 ? { sha256 } : {}) };
}
