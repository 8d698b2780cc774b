/**
 * @paradit/runtime CUDA entry: the CUDA backend and its bindings. Import it through
 * `loadCudaRuntime()` (packages/runtime/src/index.ts) so that machines without koffi or a GPU never
 * load it; koffi itself is required only when the first binding is opened.
 */
export { CudaBackend } from './backend';
export type { BenchResult, CudaBackendOptions, CudaLoadReport } from './backend';
export { cudaDriver, DeviceContext, Driver } from './driver';
export type { DeviceInfo } from './driver';
export { cublasLt, CublasLt, PreparedGemm, GEMM_WORKSPACE_BYTES } from './cublaslt';
export { nvrtc, Nvrtc, nvrtcOptions, archForDevice } from './nvrtc';
export { tuneGemms, gemmTuneKey, MIN_TUNE_FLOPS } from './gemm-tune';
export { toColumnMajor, gemmFlops, addressAlignment } from './gemm-layout';
export type { GemmSpec, GemmOperand, GemmEpilogue, LtGemm } from './gemm-layout';
export { CudaError, formatCudaError, describeInstr } from './errors';
export type { InstrContext } from './errors';
export { checkPlanTarget, parseArch } from './target';
export { NativeBlock, koffi } from './ffi';
export { readPlanFiles } from './plan-files';
export { conditionalNodesSupported } from './graph';
export { InProcessCudaRanks } from './in-process';
export type { InProcessCudaOptions } from './in-process';
export { NcclCommunicator, abortAll, applyNcclEnv } from './communicator';
export { Nccl, ncclLibrary } from './nccl';
export { DevicePlan } from './device-plan';
export { CudaRank } from './rank';
export { FILL_KERNEL_NAME, FILL_KERNEL_SOURCE, fillGeneratedWeightsOnDevice } from './fill-weights';
