/**
 * Generates `--random-weights` tensors on worker threads, straight into device bytes, so writing
 * flux-dev-2x4's 2.6 GB of seeded weights uses every core (the main thread hashes and writes in
 * file order meanwhile, nvcc runs in its own process).
 *
 * The workers evaluate the generator specified in packages/ir/src/onnx/random-weights.ts
 * (counter-based: h_i = J(J(i ^ lo) ^ hi), x_i = f32(((h_i >>> 8) - 2^23) * 2^-23 * f32(B))),
 * rounded to the source dtype, then encoded in the plan dtype. The worker source is a string
 * (eval) so it runs the same from the CLI bundle and from tests; test/weight-pool.test.ts checks
 * it bit for bit against randomTensor + encodeTensor, which would catch any drift.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ConstData, DType } from '@paradit/ir';
import { numel } from '@paradit/ir';
import type { PlanDType } from '@paradit/runtime';
import { convertedFrom } from './dtype-policy';

/** One job: a random tensor of `src` dtype, encoded as `out`. */
export interface RandomJob {
  readonly seed: number;
  readonly n: number;
  readonly fanIn: number;
  readonly src: 'f32' | 'bf16';
  readonly out: 'f32' | 'bf16';
}

/** The job for a constant the workers can generate, else undefined (main thread). */
export function randomJob(c: ConstData, out: PlanDType): RandomJob | undefined {
  const conv = convertedFrom(c);
  const base = conv ? conv.from : c;
  const src = base.source;
  if (src.kind !== 'random' || base.loaded) return undefined;
  const srcDtype: DType = base.type.dtype;
  if ((srcDtype !== 'f32' && srcDtype !== 'bf16') || (out !== 'f32' && out !== 'bf16')) return undefined;
  const shape = base.type.shape as number[];
  return { seed: src.seed, n: numel(shape), fanIn: shape.length > 0 ? shape[shape.length - 1]! : 1, src: srcDtype, out };
}

const WORKER_SOURCE = String.raw`
const { parentPort } = require('node:worker_threads');
function J(a) {
  a = (a + 0x7ed55d16 + (a << 12)) | 0;
  a = a ^ 0xc761c23c ^ (a >>> 19);
  a = (a + 0x165667b1 + (a << 5)) | 0;
  a = ((a + 0xd3a2646c) | 0) ^ (a << 9);
  a = (a + 0xfd7046c5 + (a << 3)) | 0;
  return a ^ 0xb55a4f09 ^ (a >>> 16);
}
const CHUNK = 65536;
const f = new Float32Array(CHUNK);
const u = new Uint32Array(f.buffer);
const rne = (b) => ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
parentPort.on('message', (job) => {
  const { id, seed, n, fanIn, src, out } = job;
  const lo = seed | 0;
  const hi = Math.floor(seed / 4294967296) | 0;
  const scale = Math.fround(1 / Math.sqrt(Math.max(1, fanIn))) * 2 ** -23;
  const buf = new ArrayBuffer(n * (out === 'bf16' ? 2 : 4));
  const o16 = out === 'bf16' ? new Uint16Array(buf) : undefined;
  const o32 = out === 'f32' ? new Uint32Array(buf) : undefined;
  for (let base = 0; base < n; base += CHUNK) {
    const m = Math.min(CHUNK, n - base);
    for (let j = 0; j < m; j++) {
      const h = J(J((base + j) ^ lo) ^ hi);
      f[j] = ((h >>> 8) - 8388608) * scale;
    }
    if (src === 'bf16') for (let j = 0; j < m; j++) u[j] = rne(u[j]) << 16;
    if (o16) for (let j = 0; j < m; j++) o16[base + j] = rne(u[j]);
    else for (let j = 0; j < m; j++) o32[base + j] = u[j];
  }
  parentPort.postMessage({ id, buf }, [buf]);
});
`;

/** A fixed set of workers; `run` resolves with the encoded bytes of one job. */
export class RandomWeightPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { job: RandomJob; id: number }[] = [];
  private readonly waiting = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private failed: Error | undefined;

  constructor(size = Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length)) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.on('message', (m: { id: number; buf: ArrayBuffer }) => {
        const p = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        p?.resolve(new Uint8Array(m.buf));
        this.idle.push(w);
        this.pump();
      });
      w.on('error', (e) => this.fail(e));
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  run(job: RandomJob): Promise<Uint8Array> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    const p = new Promise<Uint8Array>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    this.queue.push({ job, id });
    this.pump();
    return p;
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop()!;
      const { job, id } = this.queue.shift()!;
      w.postMessage({ id, ...job });
    }
  }

  private fail(e: Error): void {
    this.failed = e;
    for (const p of this.waiting.values()) p.reject(e);
    this.waiting.clear();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
