/**
 * The exchange of one collective among W ranks that share one GPU (in-process.ts), as a list of
 * device-to-device copies, with no FFI: every receive is a copy from a peer's send buffer (one
 * CUDA context, so any rank's stream can read any rank's memory). An all_reduce first gathers the
 * group's sends into the receiving rank's scratch ([groupSize, n], member order) and then reduces
 * it with a helper kernel. Applying the copies to byte arrays reproduces collectiveOverGroup
 * (plan/collectives.ts) exactly; the unit tests check that for every mesh of up to 8 ranks.
 */
import { groupsOf } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import type { CollectiveInstr } from '../plan/schema';

interface PeerCopy {
  /** The rank whose stream runs the copy (the receiver). */
  readonly dstRank: number;
  readonly into: 'recv' | 'scratch';
  readonly dstOffset: number;
  readonly srcRank: number;
  /** Offset in the sender's send buffer. */
  readonly srcOffset: number;
  readonly bytes: number;
}

export interface ExchangePlan {
  /** World ranks of each group, in member order. */
  readonly groups: readonly (readonly number[])[];
  readonly copies: readonly PeerCopy[];
  /** all_reduce: after the copies, every rank reduces its scratch into recv. */
  readonly reduce: boolean;
  /** Ranks whose recv is zero-filled (a non-cyclic send_recv's edge members, which nobody sends to). */
  readonly zeros: readonly number[];
}

const mod = (a: number, n: number): number => ((a % n) + n) % n;

/** Scratch bytes a rank needs for an all_reduce of `sendBytes` (0 for other collectives). */
export function exchangeScratchBytes(instr: CollectiveInstr, sendBytes: number): number {
  return instr.collective === 'all_reduce' ? instr.groupSize * sendBytes : 0;
}

export function inProcessExchange(mesh: Mesh, instr: CollectiveInstr, sendBytes: number): ExchangePlan {
  const groups = groupsOf(mesh, instr.meshAxis);
  const copies: PeerCopy[] = [];
  const zeros: number[] = [];
  const b = sendBytes;
  const push = (c: PeerCopy) => {
    if (c.bytes > 0) copies.push(c);
  };
  for (const g of groups) {
    const n = g.length;
    if (n !== instr.groupSize) throw new Error(`${instr.collective} over '${instr.meshAxis}': groups of the mesh have ${n} members, the plan says groupSize ${instr.groupSize}`);
    for (let i = 0; i < n; i++) {
      const me = g[i]!;
      switch (instr.collective) {
        case 'all_to_all': {
          if (b % n !== 0) throw new Error(`all_to_all: ${b} bytes do not split into ${n} equal chunks`);
          const c = b / n;
          for (let j = 0; j < n; j++) push({ dstRank: me, into: 'recv', dstOffset: j * c, srcRank: g[j]!, srcOffset: i * c, bytes: c });
          break;
        }
        case 'all_gather':
          for (let j = 0; j < n; j++) push({ dstRank: me, into: 'recv', dstOffset: j * b, srcRank: g[j]!, srcOffset: 0, bytes: b });
          break;
        case 'send_recv': {
          const from = i - (instr.shift ?? 0);
          if (instr.cyclic !== false) push({ dstRank: me, into: 'recv', dstOffset: 0, srcRank: g[mod(from, n)]!, srcOffset: 0, bytes: b });
          else if (from >= 0 && from < n) push({ dstRank: me, into: 'recv', dstOffset: 0, srcRank: g[from]!, srcOffset: 0, bytes: b });
          else if (b > 0) zeros.push(me);
          break;
        }
        case 'all_reduce':
          for (let j = 0; j < n; j++) push({ dstRank: me, into: 'scratch', dstOffset: j * b, srcRank: g[j]!, srcOffset: 0, bytes: b });
          break;
        default: {
          const never: never = instr.collective;
          throw new Error(`unknown collective ${String(never)}`);
        }
      }
    }
  }
  return { groups, copies, reduce: instr.collective === 'all_reduce', zeros };
}
