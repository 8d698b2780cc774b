/**
 * Writes a plan directory atomically: everything goes into a temporary folder next to the target
 * (same file system), which is renamed into place at the end; any failure removes it, so a failed
 * compile leaves neither a half-written plan nor a changed old one.
 *
 *   plan.json            validated with the zod schema before it is written
 *   weights.bin          the weights space image up to the generated constants (seeded random
 *                        weights the runtime fills: plan weights.generated): each constant at its
 *                        256-byte aligned offset, streamed tensor by tensor (never all in memory),
 *                        sha256 hashed on the way
 *   kernels/module.cu    every kernel source (deduplicated) with a header
 *   kernels/module.fatbin nvcc -fatbin: sm_90a cubin + compute_90a PTX (when nvcc is on PATH),
 *                        compiled in a child process while the weights are written
 */
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConstData, InternalError, IrError, Tensor, byteSize, decodeRawData, numel, randomTensor } from '@paradit/ir';
import { encodeTensor, planFileChecksums, planSchema } from '@paradit/runtime';
import type { Plan } from '@paradit/runtime';
import { convertTensor, convertedFrom } from './dtype-policy';
import type { BuiltPlan, PlanMeta } from './plan-builder';
import { planDtypeOf } from './plan-builder';
import type { MemoryPlan } from './memory-plan';
import { RandomWeightPool, randomJob } from './weight-pool';
import { checkPlanOutput, makeWorkDir, onAbort, replaceWithPlan } from './plan-output';

/** sm_90a machine code plus compute_90a PTX in one fat binary (cuModuleLoadData takes either). */
const NVCC_OPTIONS = ['-gencode', 'arch=compute_90a,code=[sm_90a,compute_90a]', '-std=c++17', '-O3'] as const;
const KERNEL_BINARY = 'kernels/module.fatbin';
/**
 * plan.json's kernels.options: what the source needs from any compiler (the CUDA runtime adds the
 * architecture and include path when it compiles module.cu with NVRTC).
 */
const SOURCE_OPTIONS = ['-std=c++17'];

export interface WriteOptions {
  /** 'auto' (default): use nvcc when it is on PATH; false: never; a path: that nvcc. */
  readonly nvcc?: 'auto' | false | string;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
  /** Worker threads for seeded random weights (default: one per core; 0: none). */
  readonly workers?: number;
  /** Use workers only when the random weights total at least this many bytes (default 64 MiB). */
  readonly workerMinBytes?: number;
  /** Test hook: called after the weights are written, before plan.json (throwing simulates a failure). */
  readonly beforeCommit?: (tmpDir: string) => void;
}

/** The data of a constant, read without caching it on the ConstData (weights are streamed). */
export function streamConstant(c: ConstData): Tensor {
  const conv = convertedFrom(c);
  if (conv) return convertTensor(streamConstant(conv.from), conv.dtype);
  if (c.loaded) return c.tensor();
  const src = c.source;
  const shape = c.type.shape as number[];
  if (src.kind === 'random') return randomTensor(c.type.dtype, shape, src.seed);
  if (src.kind === 'external') {
    const fd = fs.openSync(src.file, 'r');
    try {
      const buf = new Uint8Array(src.length);
      fs.readSync(fd, buf, 0, src.length, src.offset);
      return new Tensor(c.type.dtype, shape, decodeRawData(c.type.dtype, buf, numel(shape)));
    } finally {
      fs.closeSync(fd);
    }
  }
  return c.tensor();
}

/** ONNX raw_data is little-endian in the same element layout as a plan buffer of these dtypes. */
const RAW_AS_IS: ReadonlySet<string> = new Set(['f32', 'f16', 'bf16', 'i32', 'i64', 'u8', 'bool']);

function isRawAsIs(c: ConstData, planDtype: string): boolean {
  return c.source.kind === 'external' && !c.loaded && !convertedFrom(c) && c.type.dtype === planDtype && RAW_AS_IS.has(planDtype) && c.source.length === numel(c.type.shape as number[]) * byteSize(c.type.dtype);
}

/**
 * The plan bytes of an external constant stored unconverted (a bf16 model's weights in a bf16
 * plan): its file range as is, read asynchronously, without decoding to float and encoding back
 * (which cost ~10x the read on real FLUX weights). Undefined when a conversion is needed.
 */
function rawConstantBytes(c: ConstData, planDtype: string): Promise<Uint8Array> | undefined {
  const src = c.source;
  if (src.kind !== 'external' || !isRawAsIs(c, planDtype)) return undefined;
  return (async () => {
    const fh = await fs.promises.open(src.file, 'r');
    try {
      const buf = new Uint8Array(src.length);
      for (let done = 0; done < src.length; ) {
        const { bytesRead } = await fh.read(buf, done, Math.min(src.length - done, 1 << 30), src.offset + done);
        if (bytesRead <= 0) throw new IrError('E_INPUT', `${src.file}: unexpected end of file at byte ${src.offset + done} (constant ${c.type.dtype}[${c.type.shape.join(',')}]); the weights file is truncated`);
        done += bytesRead;
      }
      return buf;
    } finally {
      await fh.close();
    }
  })();
}

export function findNvcc(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' });
  const p = r.stdout?.trim();
  return r.status === 0 && p ? p : undefined;
}

/** A running nvcc: `done` settles when it exits; `kill` ends it and its children (cicc, ptxas). */
interface NvccRun {
  readonly done: Promise<void>;
  kill(): void;
}

function runNvcc(nvcc: string, dir: string): NvccRun {
  const args = [...NVCC_OPTIONS, '-fatbin', '-o', path.basename(KERNEL_BINARY), 'module.cu'];
  // Its own process group, so a kill reaches the compilers nvcc starts, too.
  const p = spawn(nvcc, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let exited = false;
  const kill = (): void => {
    if (exited || p.pid === undefined) return;
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      p.kill('SIGKILL');
    }
  };
  const unregister = onAbort(kill);
  const done = new Promise<void>((resolve, reject) => {
    let err = '';
    p.stdout.on('data', (d: Buffer) => (err += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', (e) => reject(new IrError('E_RUNTIME', `could not start nvcc (${nvcc}): ${e.message}; put CUDA's bin on PATH or pass --no-nvcc to let the runtime use NVRTC`)));
    p.on('close', (code) => {
      exited = true;
      unregister();
      if (code === 0) resolve();
      else reject(new InternalError(`nvcc failed on kernels/module.cu (exit ${code}): ${err.slice(0, 4000).trim()}; the generated CUDA does not compile (rerun with --no-nvcc to keep the source for inspection)`, 'nvcc'));
    });
  });
  return { done, kill };
}

/**
 * Streams the weights in file order. Each tensor's bytes come from a worker (seeded random data,
 * weight-pool.ts), an asynchronous read of its file range (external data stored as is) or the main
 * thread (conversions, inline data); up to LOOKAHEAD tensors are
 * prepared ahead of the one being hashed and written, so workers, hashing and the file write
 * (libuv thread pool) overlap while memory stays bounded.
 */
async function writeWeights(file: string, mp: MemoryPlan, opts: WriteOptions): Promise<string> {
  const hash = crypto.createHash('sha256');
  const fh = await fs.promises.open(file, 'w');
  // Generated constants (plan weights.generated) lie after the file: only the prefix is written.
  const inFile = mp.weights.filter((v) => mp.buffers.get(v)!.offset < mp.fileBytes);
  const jobs = inFile.map((v) => randomJob(v.constant!, planDtypeOf(v)));
  const rawable = inFile.map((v, i) => !jobs[i] && isRawAsIs(v.constant!, planDtypeOf(v)));
  const randomBytes = jobs.reduce((s, j, i) => s + (j ? mp.buffers.get(inFile[i]!)!.bytes : 0), 0);
  const pool = opts.workers !== 0 && randomBytes >= (opts.workerMinBytes ?? 64 << 20) ? new RandomWeightPool(opts.workers) : undefined;
  const LOOKAHEAD = 4;
  const ready = new Map<number, Promise<Uint8Array>>();
  const start = (i: number): void => {
    if (i >= inFile.length || ready.has(i)) return;
    const v = inFile[i]!;
    const job = jobs[i];
    const raw = job ? undefined : rawConstantBytes(v.constant!, planDtypeOf(v));
    const p = pool && job ? pool.run(job) : (raw ?? Promise.resolve().then(() => encodeTensor(streamConstant(v.constant!), planDtypeOf(v))));
    p.catch(() => undefined); // awaited in order below
    ready.set(i, p);
  };
  let pending: Promise<unknown> = Promise.resolve();
  try {
    let pos = 0;
    // Generated constants (plan weights.generated) lie after the file: only the prefix is written.
    const total = inFile.length;
    for (let i = 0; i < total; i++) {
      // Worker jobs and raw file reads start LOOKAHEAD tensors early; main-thread ones when their turn comes.
      for (let j = i; j < i + LOOKAHEAD; j++) if ((pool && jobs[j]) || rawable[j]) start(j);
      start(i);
      const b = mp.buffers.get(inFile[i]!)!;
      const bytes = await ready.get(i)!;
      ready.delete(i);
      if (bytes.byteLength !== b.bytes) throw new Error(`weights: tensor ${i} has ${bytes.byteLength} bytes, its buffer ${b.bytes}`);
      // Padding between tensors is zeros: hash them; the file gets them as a hole.
      if (b.offset > pos) hash.update(new Uint8Array(b.offset - pos));
      hash.update(bytes);
      await pending;
      pending = fh.write(bytes, 0, bytes.length, b.offset);
      pos = b.offset + b.bytes;
      opts.onProgress?.('weights', i + 1, total);
    }
    await pending;
    if (mp.fileBytes > pos) hash.update(new Uint8Array(mp.fileBytes - pos));
    await fh.truncate(mp.fileBytes);
  } finally {
    await pending.catch(() => undefined);
    await Promise.all([...ready.values()].map((p) => p.catch(() => undefined)));
    await pool?.close();
    await fh.close();
  }
  return hash.digest('hex');
}

interface WrittenPlan {
  readonly plan: Plan;
  readonly dir: string;
  readonly nvccSeconds: number | null;
  readonly weightsSeconds: number;
}

export async function writePlan(target: string, built: BuiltPlan, mp: MemoryPlan, meta: Omit<PlanMeta, 'weightsSha256' | 'cubin' | 'sourceOptions' | 'files'>, opts: WriteOptions = {}): Promise<WrittenPlan> {
  checkPlanOutput(target);
  const work = makeWorkDir(target);
  const tmp = work.path;
  let nvccRun: NvccRun | undefined;
  try {
    const kdir = path.join(tmp, 'kernels');
    fs.mkdirSync(kdir);
    fs.writeFileSync(path.join(kdir, 'module.cu'), built.kernels.source);
    const nvcc = opts.nvcc === false ? undefined : opts.nvcc === undefined || opts.nvcc === 'auto' ? findNvcc() : opts.nvcc;
    const t0 = performance.now();
    let nvccDone: number | null = null;
    nvccRun = nvcc ? runNvcc(nvcc, kdir) : undefined;
    const compiling = nvccRun
      ? nvccRun.done.then(() => {
          nvccDone = (performance.now() - t0) / 1000;
        })
      : undefined;
    // Keep a rejection from surfacing as unhandled while the weights are written.
    compiling?.catch(() => undefined);
    let sha: string;
    try {
      sha = await writeWeights(path.join(tmp, 'weights.bin'), mp, opts);
    } catch (e) {
      await compiling?.catch(() => undefined);
      throw e;
    }
    const weightsSeconds = (performance.now() - t0) / 1000;
    if (compiling) {
      opts.onProgress?.('nvcc', 0, 1);
      await compiling;
      opts.onProgress?.('nvcc', 1, 1);
    }
    opts.beforeCommit?.(tmp);
    fs.chmodSync(tmp, 0o755); // mkdtemp made it private; a plan is an ordinary directory
    const plan = built.plan({
      ...meta,
      weightsSha256: sha,
      cubin: nvcc ? KERNEL_BINARY : null,
      sourceOptions: SOURCE_OPTIONS,
      files: planFileChecksums(tmp, ['kernels/module.cu', ...(nvcc ? [KERNEL_BINARY] : [])]),
    });
    const checked = planSchema.safeParse(plan);
    if (!checked.success) throw new Error(`plan.json does not match the plan schema (a compiler bug): ${checked.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    fs.writeFileSync(path.join(tmp, 'plan.json'), JSON.stringify(plan));
    replaceWithPlan(tmp, target);
    work.keep();
    return { plan, dir: target, nvccSeconds: nvccDone, weightsSeconds };
  } catch (e) {
    nvccRun?.kill();
    work.discard();
    throw e;
  }
}

