/** Non-GEMM, non-attention CUDA kernels: the fragment emitter and its shared header. */
export { emitFragment } from './fragment';
export type { EmitOptions } from './fragment';
export { KERNEL_HEADER, KERNEL_HEADER_GUARD } from './header';
export { CodegenError } from './codegen-error';
export { cutFragments, gemmFirstOrder, ELSEWHERE } from './fragments';
