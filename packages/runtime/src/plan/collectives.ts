/**
 * What the plan's rank-dependent instructions mean, byte for byte: the results of a collective for
 * every member of one group from every member's send bytes, and a rank's shard_slice. The CPU
 * backend (simulated ranks in one process, or one process per rank over TCP) computes them here;
 * the CUDA backend does the same through NCCL or device copies, and its tests compare with this.
 *
 * Groups come from the plan's mesh (@paradit/ir mesh.ts): a group of axis A is the ranks that agree
 * on every other mesh coordinate, ordered by their index along A.
 */
import { IrError, Tensor, axisIndex } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import type { CollectiveInstr, MeshAxisName, PlanDType, ShardSliceInstr } from './schema';
import { PLAN_DTYPE_BYTES, decodeTensor, encodeInto } from './bytes';

/** A collective as seen by one rank: its instruction, its bytes to send and its buffer to fill. */
export interface CollectiveRequest {
  readonly instr: CollectiveInstr;
  /** Position of the instruction in the program ("12", "7.then.3"): ranks must meet at the same one. */
  readonly where: string;
  readonly send: Uint8Array;
  readonly recv: Uint8Array;
  /** Element type of send and recv (reductions need it). */
  readonly dtype: PlanDType;
}

/** The rank's index along `axis` (its member index in its group). */
export function memberIndexOf(mesh: Mesh, axis: MeshAxisName, rank: number): number {
  return axisIndex(mesh, axis, rank);
}

const mod = (a: number, n: number): number => ((a % n) + n) % n;

/** Expected byte sizes of send and recv for one member, from the send size. */
export function collectiveBytes(instr: CollectiveInstr, sendBytes: number): { send: number; recv: number } {
  return { send: sendBytes, recv: instr.collective === 'all_gather' ? sendBytes * instr.groupSize : sendBytes };
}

function fail(instr: CollectiveInstr, why: string): never {
  throw new IrError('E_RUNTIME', `${instr.collective} over '${instr.meshAxis}' (from ${instr.origin.join(', ') || '?'}): ${why}`);
}

/**
 * Every member's received bytes for one collective over one group: `sends[i]` is member i's send
 * buffer; returns recv[i] for member i (fresh arrays of `recvBytes` bytes).
 */
export function collectiveOverGroup(instr: CollectiveInstr, sends: readonly Uint8Array[], dtype: PlanDType, recvBytes: number): Uint8Array[] {
  const n = sends.length;
  if (n !== instr.groupSize) fail(instr, `${n} members met, the plan says groupSize ${instr.groupSize}`);
  const b = sends[0]!.byteLength;
  if (sends.some((s) => s.byteLength !== b)) fail(instr, `members send different sizes (${sends.map((s) => s.byteLength).join(', ')} bytes)`);
  const want = collectiveBytes(instr, b).recv;
  if (recvBytes !== want) fail(instr, `recv buffer has ${recvBytes} bytes, expected ${want} for ${b} bytes sent`);
  const out = sends.map(() => new Uint8Array(recvBytes));
  switch (instr.collective) {
    case 'all_to_all': {
      if (b % n !== 0) fail(instr, `${b} bytes do not split into ${n} equal chunks`);
      const c = b / n;
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[j]!.set(sends[i]!.subarray(j * c, (j + 1) * c), i * c);
      return out;
    }
    case 'all_gather':
      for (const o of out) sends.forEach((s, i) => o.set(s, i * b));
      return out;
    case 'send_recv': {
      const shift = instr.shift ?? 0;
      // Non-cyclic: no send crosses the group's edge; the fresh recv arrays stay zero there.
      sends.forEach((s, i) => {
        if (instr.cyclic !== false) out[mod(i + shift, n)]!.set(s);
        else if (i + shift >= 0 && i + shift < n) out[i + shift]!.set(s);
      });
      return out;
    }
    case 'all_reduce': {
      const reduce = instr.reduce ?? 'sum';
      const elems = b / PLAN_DTYPE_BYTES[dtype];
      const xs = sends.map((s) => decodeTensor(s, dtype, [elems]).data);
      const acc = new Float64Array(elems).fill(reduce === 'max' ? -Infinity : 0);
      for (const x of xs) for (let k = 0; k < elems; k++) acc[k] = reduce === 'max' ? Math.max(acc[k]!, x[k]!) : acc[k]! + x[k]!;
      if (reduce === 'mean') for (let k = 0; k < elems; k++) acc[k]! /= n;
      const r = new Uint8Array(recvBytes);
      encodeInto(new Tensor('f32', [elems], Float32Array.from(acc)), dtype, r);
      for (const o of out) o.set(r);
      return out;
    }
    default: {
      const never: never = instr.collective;
      return fail(instr, `unknown collective ${String(never)}`);
    }
  }
}

/** This rank's shard_slice: copies part (index - shift) mod groupSize of every row of src into dst. */
export function shardSliceInto(instr: ShardSliceInstr, index: number, src: Uint8Array, dst: Uint8Array): void {
  const n = instr.groupSize;
  const part = mod(index - instr.shift, n);
  const pb = instr.partBytes;
  if (src.byteLength !== instr.rows * n * pb || dst.byteLength !== instr.rows * pb) {
    throw new IrError('E_RUNTIME', `shard_slice (from ${instr.origin.join(', ')}): expected ${instr.rows * n * pb} source and ${instr.rows * pb} destination bytes, got ${src.byteLength} and ${dst.byteLength}`);
  }
  for (let r = 0; r < instr.rows; r++) {
    const s = (r * n + part) * pb;
    dst.set(src.subarray(s, s + pb), r * pb);
  }
}
