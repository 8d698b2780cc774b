/** @paradit/runtime: runs plans (CPU now; CUDA later) and compares outputs. No compiler code here. */
export * from './compare';
export * from './test-data';
export * from './denoise/fbcache-signature';
export * from './denoise/step-executor';
export * from './denoise/denoise';
export * from './plan/schema';
export * from './plan/bytes';
export * from './plan/generated-weights';
// CUDA backend: a separate entry loaded on demand, so importing the runtime never loads koffi.
export type { CudaBackend, CudaBackendOptions, CudaLoadReport, BenchResult } from './cuda/backend';
export { checkPlanTarget } from './cuda/target';
/** Loads the CUDA entry (packages/runtime/src/cuda/index.ts) on demand. */
export function loadCudaRuntime(): typeof import('./cuda') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('./cuda') as typeof import('./cuda');
}
export * from './plan/load';
export { instrLabel, planFileChecksums } from './plan/validate';
export * from './plan/cpu-backend';
export * from './plan/open';
export * from './plan/collectives';
export * from './plan/streams';
export * from './plan/simulated-ranks';
export * from './distributed/rendezvous';
export * from './distributed/types';
export * from './distributed/env';
export * from './distributed/nodelist';
export * from './distributed/frames';
export * from './distributed/control-channel';
export * from './distributed/tcp-collectives';
export * from './image';
