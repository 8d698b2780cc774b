/** Shared by the cross-package pass tests: ONNX round trip, the default pipeline, op counts, rel L2. */
import { Module, exportModel, importModel } from '@paradit/ir';
import { createPassContext, defaultPipeline, runPipeline } from '@paradit/passes';

/** Relative L2 error of got against ref (Infinity when NaNs do not line up): the one harness's. */
export { relL2 } from '../support/harness';
/** Export to ONNX bytes and import again (what a user's exported file goes through). */
export const roundTrip = (m: Module): Module => importModel(exportModel(m));
/** The default pipeline with the verifier before and after every pass. */
export const compile = (m: Module): Module => runPipeline(m, defaultPipeline(), createPassContext({ verify: true }));
/** Nodes of the top-level graph with this op. */
export const count = (m: Module, op: string): number => m.graph.nodes.filter((n) => n.op === op).length;
