/**
 * Every plan collective through real NCCL in a world of one (groups of one forced through NCCL:
 * grouped self ncclSend/ncclRecv, ncclAllGather, ncclAllReduce sum/max/avg), on device buffers,
 * eagerly and captured into a CUDA graph, compared byte for byte with collectiveOverGroup.
 * Part of bench/multi-gpu/smoke.ts (device machine only).
 */
import { Tensor } from '@paradit/ir';
import type { CollectiveInstr, PlanDType } from '../../packages/runtime/src/plan/schema';
import { collectiveOverGroup } from '../../packages/runtime/src/plan/collectives';
import { PLAN_DTYPE_BYTES, encodeTensor } from '../../packages/runtime/src/plan/bytes';
import type { Driver } from '../../packages/runtime/src/cuda/driver';
import type { Ptr } from '../../packages/runtime/src/cuda/ffi';
import { NcclCommunicator } from '../../packages/runtime/src/cuda/communicator';
import { captureGraph } from '../../packages/runtime/src/cuda/graph';
import { describeCollective } from '../../packages/runtime/src/cuda/prepare-comm';
import type { PreparedCollective } from '../../packages/runtime/src/cuda/prepare-comm';
import { seededValues } from './dist-plans';

export interface DirectResult {
  readonly check: string;
  readonly ok: boolean;
  readonly detail: string;
}

function instrs(): CollectiveInstr[] {
  const base = { op: 'collective' as const, meshAxis: 'sp' as const, groupSize: 1, send: 0, recv: 1, origin: ['/direct'] };
  return [
    { ...base, collective: 'all_to_all' },
    { ...base, collective: 'all_gather' },
    { ...base, collective: 'send_recv', shift: 1 },
    { ...base, collective: 'all_reduce', reduce: 'sum' },
    { ...base, collective: 'all_reduce', reduce: 'max' },
    { ...base, collective: 'all_reduce', reduce: 'mean' },
    { ...base, collective: 'all_reduce', reduce: 'sum', send: 1 },
  ];
}

/** Runs each collective kind x dtype x (eager, graph) through `comm`; returns one result each. */
export function ncclDirectChecks(d: Driver, comm: NcclCommunicator, stream: Ptr): DirectResult[] {
  const out: DirectResult[] = [];
  const elems = 1000;
  for (const dtype of ['f32', 'bf16', 'f16'] as PlanDType[]) {
    for (const instr of instrs()) {
      for (const mode of ['eager', 'graph'] as const) {
        const check = `nccl world 1 ${describeCollective(instr)}${instr.send === instr.recv ? ' in place' : ''} ${dtype} ${mode}`;
        const sendBytes = elems * PLAN_DTYPE_BYTES[dtype];
        const recvBytes = sendBytes; // a group of one: all_gather's receive is its send too
        const send = d.memAlloc(sendBytes, 'send');
        const recv = instr.send === instr.recv ? send : d.memAlloc(recvBytes, 'recv');
        try {
          const host = encodeTensor(new Tensor('f32', [elems], seededValues(elems, 5 + out.length)), dtype);
          d.htod(send, host);
          if (recv !== send) d.memsetD8(recv, 0xee, recvBytes);
          const ctx = { index: '0', op: 'collective' as const, origin: instr.origin, detail: describeCollective(instr) };
          const p: PreparedCollective = { op: 'collective', ctx, instr, where: '0', send, recv, sendBytes, recvBytes, dtype, memberIndex: 0, scratch: 0n };
          if (mode === 'eager') comm.enqueue(p, stream);
          else {
            const g = captureGraph(d, stream, ctx, () => comm.enqueue(p, stream));
            try {
              d.call('cuGraphLaunch', [g.exec, stream]);
              d.sync(stream);
            } finally {
              d.call('cuGraphExecDestroy', [g.exec]);
              d.call('cuGraphDestroy', [g.graph]);
            }
          }
          d.sync(stream);
          const got = new Uint8Array(recvBytes);
          d.dtoh(got, recv);
          const want = collectiveOverGroup(instr, [host], dtype, recvBytes)[0]!;
          let bad = 0;
          for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) bad++;
          out.push({ check, ok: bad === 0, detail: bad ? `${bad} of ${want.length} bytes differ` : `${recvBytes} bytes equal` });
        } catch (e) {
          out.push({ check, ok: false, detail: (e as Error).message });
        } finally {
          d.memFree(send);
          if (recv !== send) d.memFree(recv);
        }
      }
    }
  }
  return out;
}
