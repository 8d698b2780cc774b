/**
 * Hand-built sharded plans (no kernels: copy, shard_slice, collective and branch instructions
 * only) that exercise every rank-dependent part of the CUDA runtime, for any mesh: every
 * collective kind, both streams with fork/join events, an in-place all_reduce, a branch whose
 * then-body forks onto the communication stream, a shard_slice of a weight (ranks sharing one GPU
 * share one weights allocation). Groups of one (axes of size 1) stay in the program, so the same
 * plan also runs on a mesh of one (through NCCL with `nccl: true`). The outputs are gathered over
 * every axis, so every rank returns the same bytes. Used by bench/multi-gpu/smoke.ts on the GPU
 * and by packages/runtime/test/cuda-dist.test.ts.
 *
 *   0  shard_slice x -> s0 over 'sp' (shift 0)                  stream 0, record e0
 *   1  all_to_all s0 -> s1 over 'ulysses'                        stream 1, wait e0, record e1
 *   2  shard_slice wt (weights) -> w0 over 'cfg' (shift 1)       stream 0, record e2
 *   3  send_recv s1 -> s2 over 'ring' (shift 1)                  stream 0, wait e1
 *   4  all_reduce sum w0 -> w1 over 'cfg' (w1 is an output)      stream 1, wait e2, record e5
 *   5  branch flag: then  0 copy s2 -> t (record e3)
 *                         1 all_reduce mean t in place over 'sp' (stream 1, wait e3, record e4)
 *                         2 copy t -> s3 (wait e4)
 *                   else  0 all_reduce max s2 -> s3 over 'sp'
 *   6  all_gather s3 -> g over 'sp' (g is an output)             stream 0, wait e5
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Tensor, makeMesh } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import { encodeTensor } from '../../packages/runtime/src/plan/bytes';
import { PLAN_FORMAT, PLAN_VERSION, Plan, planSchema } from '../../packages/runtime/src/plan/schema';

export type DistDType = 'f32' | 'bf16';

export const ROWS = 4;

/** Deterministic values in [-1, 1) (xorshift). */
export function seededValues(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 2 ** 32) * 2 - 1;
  });
}

export interface DistPlanShape {
  readonly cols: number;
  readonly wcols: number;
}

export function distPlanShape(mesh: Mesh): DistPlanShape {
  const sp = mesh.ring * mesh.ulysses;
  return { cols: 8 * sp * mesh.ulysses, wcols: 6 * mesh.cfg };
}

/** Writes the plan directory (plan.json, weights.bin, an empty kernels/module.cu) and returns the plan. */
export function writeDistPlan(dir: string, meshDegrees: Partial<Mesh>, dtype: DistDType): Plan {
  const mesh = makeMesh(meshDegrees);
  const sp = mesh.ring * mesh.ulysses;
  const es = dtype === 'f32' ? 4 : 2;
  const { cols, wcols } = distPlanShape(mesh);
  const spaces = { weights: 0, io: 0, state: 0, arena: 0 };
  const buffers: Plan['buffers'] = [];
  const add = (name: string, space: keyof typeof spaces, shape: number[], d: 'f32' | 'bf16' | 'u8' = dtype): number => {
    const bytes = shape.reduce((a, b) => a * b, 1) * (d === 'u8' ? 1 : d === 'f32' ? 4 : 2);
    const id = buffers.length;
    buffers.push({ id, name, dtype: d, shape, space, offset: spaces[space], bytes });
    spaces[space] += Math.ceil(bytes / 256) * 256;
    return id;
  };
  const wt = add('wt', 'weights', [ROWS, wcols]);
  const x = add('x', 'io', [ROWS, cols]);
  const flag = add('flag', 'io', [1], 'u8');
  const g = add('g', 'io', [sp, ROWS, cols / sp]);
  const w1 = add('w1', 'io', [ROWS, wcols / mesh.cfg]);
  const s0 = add('s0', 'arena', [ROWS, cols / sp]);
  const s1 = add('s1', 'arena', [ROWS, cols / sp]);
  const s2 = add('s2', 'arena', [ROWS, cols / sp]);
  const s3 = add('s3', 'arena', [ROWS, cols / sp]);
  const t = add('t', 'arena', [ROWS, cols / sp]);
  const w0 = add('w0', 'arena', [ROWS, wcols / mesh.cfg]);
  const coll = (collective: 'all_to_all' | 'all_gather' | 'all_reduce' | 'send_recv', meshAxis: 'cfg' | 'ring' | 'ulysses' | 'sp', send: number, recv: number, extra: object = {}) => {
    const groupSize = { cfg: mesh.cfg, ring: mesh.ring, ulysses: mesh.ulysses, sp }[meshAxis];
    return { op: 'collective' as const, collective, meshAxis, groupSize, send, recv, origin: [`/dist/${collective}_${meshAxis}`], ...extra };
  };
  const program: Plan['program'] = [
    { op: 'shard_slice', meshAxis: 'sp', groupSize: sp, shift: 0, src: x, dst: s0, rows: ROWS, partBytes: (cols / sp) * es, origin: ['/dist/shard_x'], record: 0 },
    { ...coll('all_to_all', 'ulysses', s0, s1), stream: 1, wait: [0], record: 1 },
    { op: 'shard_slice', meshAxis: 'cfg', groupSize: mesh.cfg, shift: 1, src: wt, dst: w0, rows: ROWS, partBytes: (wcols / mesh.cfg) * es, origin: ['/dist/shard_w'], record: 2 },
    { ...coll('send_recv', 'ring', s1, s2, { shift: 1 }), wait: [1] },
    { ...coll('all_reduce', 'cfg', w0, w1, { reduce: 'sum' }), stream: 1, wait: [2], record: 5 },
    {
      op: 'branch', cond: flag, origin: ['/dist/If'],
      then: [
        { op: 'copy', src: s2, dst: t, origin: ['/dist/then/copy_in'], record: 3 },
        { ...coll('all_reduce', 'sp', t, t, { reduce: 'mean' }), stream: 1, wait: [3], record: 4 },
        { op: 'copy', src: t, dst: s3, origin: ['/dist/then/copy_out'], wait: [4] },
      ],
      else: [coll('all_reduce', 'sp', s2, s3, { reduce: 'max' })],
    },
    { ...coll('all_gather', 'sp', s3, g), wait: [5] },
  ];
  const weights = encodeTensor(new Tensor('f32', [ROWS * wcols], seededValues(ROWS * wcols, 77)), dtype);
  const weightsFile = new Uint8Array(spaces.weights);
  weightsFile.set(weights, buffers[wt]!.offset);
  const plan: Plan = planSchema.parse({
    format: PLAN_FORMAT, version: PLAN_VERSION,
    compiledFrom: { model: 'dist smoke (hand-built)', modelSha256: '0'.repeat(64), paradit: 'smoke', createdAt: new Date(0).toISOString() },
    target: { backend: 'cuda', arch: 'sm_90a', dtype, mesh: { ...mesh } },
    streams: 2,
    events: 6,
    spaces,
    weights: { file: 'weights.bin', bytes: weightsFile.byteLength, alignment: 256, sha256: crypto.createHash('sha256').update(weightsFile).digest('hex'), generated: [] },
    kernels: { source: 'kernels/module.cu', cubin: null, options: [] },
    files: { 'kernels/module.cu': crypto.createHash('sha256').update(DIST_SOURCE).digest('hex') },
    buffers,
    inputs: [{ name: 'x', buf: x }, { name: 'flag', buf: flag }],
    outputs: [{ name: 'g', buf: g }, { name: 'w1', buf: w1 }],
    state: [],
    program,
    stats: { collectives: 7 },
  });
  fs.mkdirSync(path.join(dir, 'kernels'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'weights.bin'), weightsFile);
  fs.writeFileSync(path.join(dir, 'kernels/module.cu'), DIST_SOURCE);
  fs.writeFileSync(path.join(dir, 'plan.json'), JSON.stringify(plan, null, 1));
  return plan;
}

/** kernels/module.cu of a dist plan (recorded in plan.json's `files`). */
const DIST_SOURCE = '// no kernels: copies, shard_slice and collectives only\n';

/** The step inputs of a dist plan: seeded x, and the branch flag. */
export function distInputs(mesh: Mesh, dtype: DistDType, seed: number, flag: boolean): Map<string, Tensor> {
  const { cols } = distPlanShape(mesh);
  const x = seededValues(ROWS * cols, seed);
  const xt = dtype === 'f32' ? new Tensor('f32', [ROWS, cols], x) : new Tensor('bf16', [ROWS, cols], Float32Array.from(encodeAndBack(x)));
  return new Map([['x', xt], ['flag', new Tensor('u8', [1], Float64Array.of(flag ? 1 : 0))]]);
}

/** bf16-exact values (what the device holds), so both backends start from the same numbers. */
function encodeAndBack(x: Float32Array): Float32Array {
  const bits = new Uint32Array(Float32Array.from(x).buffer);
  for (let i = 0; i < bits.length; i++) bits[i] = ((bits[i]! + 0x7fff + ((bits[i]! >>> 16) & 1)) >>> 16) << 16;
  return new Float32Array(bits.buffer);
}

/** Byte-level equality of two step results (NaN-safe): a message per difference, empty when equal. */
export function diffOutputs(got: ReadonlyMap<string, Tensor>, want: ReadonlyMap<string, Tensor>): string[] {
  const out: string[] = [];
  for (const [name, w] of want) {
    const gt = got.get(name);
    if (!gt) {
      out.push(`${name}: missing`);
      continue;
    }
    let bad = 0;
    let first = -1;
    for (let i = 0; i < w.size; i++) {
      if (!Object.is(gt.data[i], w.data[i])) {
        bad++;
        if (first < 0) first = i;
      }
    }
    if (gt.size !== w.size || bad) out.push(`${name}: ${bad} of ${w.size} elements differ (first at ${first}: ${gt.data[first]} vs ${w.data[first]})`);
  }
  return out;
}
