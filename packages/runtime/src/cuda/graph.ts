/**
 * CUDA graph capture with conditional nodes. A plan `branch` becomes, inside the captured step:
 *   paradit_set_conditional(handle, cond)       a 1-thread kernel that reads the cond byte on device
 *   IF/ELSE conditional node(handle)            body 0 = `then`, body 1 = `else`
 * The node is added to the capturing stream's graph by hand (cuGraphAddNode_v2 on the graph that
 * cuStreamGetCaptureInfo_v3 returns, then cuStreamUpdateCaptureDependencies_v2), and each body is
 * filled by capturing on a side stream with cuStreamBeginCaptureToGraph. Needs CUDA 12.8+ drivers
 * (if/else bodies); `conditionalNodesSupported` says whether this driver has the entry points.
 */
import { CU_GRAPH_COND_TYPE_IF, CU_GRAPH_NODE_TYPE_CONDITIONAL, CU_STREAM_SET_CAPTURE_DEPENDENCIES, Driver } from './driver';
import type { InstrContext } from './errors';
import { NativeBlock, Ptr, koffi, toPtr } from './ffi';

/** sizeof(CUgraphNodeParams) in CUDA 12.2+: type + reserved0[3], a 232-byte union, reserved2. */
const NODE_PARAMS_BYTES = 256;
const UNION = 16;

const CAPTURE_MODE_RELAXED = 2;

export function conditionalNodesSupported(d: Driver): boolean {
  return ['cuStreamBeginCaptureToGraph', 'cuStreamGetCaptureInfo_v3', 'cuStreamUpdateCaptureDependencies_v2', 'cuGraphAddNode_v2', 'cuGraphConditionalHandleCreate'].every((n) =>
    d.has(n),
  );
}

interface CaptureInfo {
  readonly graph: Ptr;
  readonly deps: Ptr;
  readonly numDeps: number;
}

function captureInfo(d: Driver, stream: Ptr, ctx: InstrContext): CaptureInfo {
  const status = [0];
  const id = [0];
  const graph: unknown[] = [null];
  const deps: unknown[] = [null];
  const edges: unknown[] = [null];
  const n = [0];
  d.call('cuStreamGetCaptureInfo_v3', [stream, status, id, graph, deps, edges, n], ctx);
  if (status[0] !== 1) throw new Error(`CUDA runtime: stream is not capturing (status ${status[0]}) at ${ctx.index}`);
  return { graph: toPtr(graph[0]), deps: toPtr(deps[0]), numDeps: Number(n[0]) };
}

/** Creates the conditional handle on the graph `stream` is capturing into. */
export function createConditionalHandle(d: Driver, stream: Ptr, cuCtx: Ptr, ctx: InstrContext): bigint {
  const info = captureInfo(d, stream, ctx);
  const h: unknown[] = [0];
  d.call('cuGraphConditionalHandleCreate', [h, info.graph, cuCtx, 0, 0], ctx);
  return toPtr(h[0]);
}

/**
 * Appends an IF/ELSE node controlled by `handle` after the stream's current capture dependencies
 * and returns its two body graphs [then, else].
 */
export function addIfElseNode(d: Driver, stream: Ptr, cuCtx: Ptr, handle: bigint, ctx: InstrContext): [Ptr, Ptr] {
  const info = captureInfo(d, stream, ctx);
  const params = new NativeBlock(NODE_PARAMS_BYTES);
  const nodeArr = new NativeBlock(8);
  try {
    const v = params.view;
    v.setInt32(0, CU_GRAPH_NODE_TYPE_CONDITIONAL, true);
    v.setBigUint64(UNION + 0, handle, true); // handle
    v.setInt32(UNION + 8, CU_GRAPH_COND_TYPE_IF, true); // type
    v.setUint32(UNION + 12, 2, true); // size: then + else
    v.setBigUint64(UNION + 16, 0n, true); // phGraph_out (filled by the driver)
    v.setBigUint64(UNION + 24, cuCtx, true); // ctx
    const node: unknown[] = [null];
    d.call('cuGraphAddNode_v2', [node, info.graph, info.numDeps ? info.deps : null, null, info.numDeps, params.addr], ctx);
    nodeArr.view.setBigUint64(0, toPtr(node[0]), true);
    d.call('cuStreamUpdateCaptureDependencies_v2', [stream, nodeArr.addr, null, 1, CU_STREAM_SET_CAPTURE_DEPENDENCIES], ctx);
    const bodies = v.getBigUint64(UNION + 16, true);
    if (bodies === 0n) throw new Error(`CUDA runtime: the driver returned no body graphs for the conditional node of ${ctx.index}`);
    const arr = new DataView(koffi().view(bodies, 16));
    return [arr.getBigUint64(0, true), arr.getBigUint64(8, true)];
  } finally {
    params.free();
    nodeArr.free();
  }
}

/** Captures `fill(sideStream)` into an existing (body) graph. */
export function captureInto(d: Driver, sideStream: Ptr, graph: Ptr, ctx: InstrContext, fill: () => void): void {
  d.call('cuStreamBeginCaptureToGraph', [sideStream, graph, null, null, 0, CAPTURE_MODE_RELAXED], ctx);
  const out: unknown[] = [null];
  try {
    fill();
  } catch (e) {
    try {
      d.call('cuStreamEndCapture', [sideStream, out]);
    } catch {
      /* the capture was already invalidated */
    }
    throw e;
  }
  d.call('cuStreamEndCapture', [sideStream, out], ctx);
}

/** Captures a whole step on `stream` and instantiates it. The caller destroys both handles. */
export function captureGraph(d: Driver, stream: Ptr, ctx: InstrContext, fill: () => void): { graph: Ptr; exec: Ptr } {
  d.call('cuStreamBeginCapture_v2', [stream, CAPTURE_MODE_RELAXED], ctx);
  try {
    fill();
  } catch (e) {
    try {
      const out: unknown[] = [null];
      d.call('cuStreamEndCapture', [stream, out]);
      const g = toPtr(out[0]);
      if (g) d.call('cuGraphDestroy', [g]);
    } catch {
      /* invalidated capture: nothing to clean */
    }
    throw e;
  }
  const graph = d.outPtr('cuStreamEndCapture', (o) => [stream, o], ctx);
  const exec = d.outPtr('cuGraphInstantiateWithFlags', (o) => [o, graph, 0], ctx);
  return { graph, exec };
}
