/**
 * The CPU backend's collectives when each rank is its own process: every collective is an op of
 * the control channel. Each rank sends its send bytes to the hub (rank 0), which computes every
 * member's result with the same exchange as simulated ranks (exchangeAll over the plan's mesh,
 * collectives.ts) and answers each rank with its receive bytes. A star through rank 0: simple and
 * exact, meant for CI-sized models (GPU ranks use NCCL).
 */
import { IrError, formatMesh } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import type { CollectiveRunner } from '../plan/cpu-backend';
import type { CollectiveRequest } from '../plan/collectives';
import { exchangeAll } from '../plan/simulated-ranks';
import type { ControlChannel } from './control-channel';

/** The op key of a collective: ranks must meet at the same instruction. */
function collectiveKey(req: CollectiveRequest): string {
  return `instruction ${req.where} (${req.instr.collective} over '${req.instr.meshAxis}'${req.instr.origin.length ? ` from ${req.instr.origin[0]}` : ''})`;
}

export function tcpCollectives(channel: ControlChannel, mesh: Mesh): CollectiveRunner {
  return async (req) => {
    const recvBytes = req.recv.byteLength;
    const combine = (sends: readonly Uint8Array[]): Uint8Array[] => {
      if (sends.length !== channel.world) throw new IrError('E_RUNTIME', `${sends.length} ranks met, mesh ${formatMesh(mesh)} has ${channel.world}`);
      const reqs = sends.map((send) => ({ instr: req.instr, where: req.where, send, recv: new Uint8Array(recvBytes), dtype: req.dtype }));
      exchangeAll(mesh, reqs);
      return reqs.map((r) => r.recv);
    };
    const got = await channel.exchange(collectiveKey(req), req.send, combine);
    if (got.byteLength !== recvBytes) throw new IrError('E_RUNTIME', `${collectiveKey(req)}: received ${got.byteLength} bytes, the receive buffer has ${recvBytes}`);
    req.recv.set(got);
  };
}
