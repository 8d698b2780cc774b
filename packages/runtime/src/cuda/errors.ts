/**
 * Errors of the CUDA runtime. Every failed library call throws a CudaError that names the call,
 * the library's status name and text, and, when it happened while preparing or running a plan
 * instruction, that instruction (kernel name, position in the program) and the ONNX nodes it came
 * from, so a failure points back at the model. Pure (no FFI): unit-tested everywhere.
 */

/** Where in a plan a call was made. */
export interface InstrContext {
  /** Position in the program, e.g. "12" or "7.then.3" inside a branch. */
  readonly index: string;
  readonly op: 'kernel' | 'gemm' | 'copy' | 'branch' | 'collective' | 'shard_slice' | 'step';
  /** Kernel entry name for kernel instructions. */
  readonly kernel?: string;
  /** What a collective does, e.g. "all_to_all over 'ulysses' (4 ranks)". */
  readonly detail?: string;
  readonly origin: readonly string[];
}

type CudaLibraryName = 'driver' | 'nvrtc' | 'cublasLt' | 'nccl';

export class CudaError extends Error {
  constructor(
    readonly library: CudaLibraryName,
    readonly call: string,
    readonly status: number,
    readonly statusName: string,
    readonly context: InstrContext | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'CudaError';
  }
}

/** Names the instruction: "kernel 'fused_3' (instruction 12; ONNX nodes /b0/Add, /b0/Mul)". */
export function describeInstr(ctx: InstrContext): string {
  const what = ctx.op === 'kernel' && ctx.kernel ? `kernel '${ctx.kernel}'` : ctx.detail ?? `${ctx.op}`;
  const shown = ctx.origin.slice(0, 6);
  const more = ctx.origin.length > shown.length ? `, ... (${ctx.origin.length - shown.length} more)` : '';
  const nodes = ctx.origin.length ? `; ONNX nodes ${shown.join(', ')}${more}` : '';
  return `${what} (instruction ${ctx.index}${nodes})`;
}

/** "cuLaunchKernel failed: CUDA_ERROR_INVALID_VALUE (invalid argument) in kernel 'k' (...)". */
export function formatCudaError(call: string, statusName: string, detail: string | undefined, ctx?: InstrContext, hint?: string): string {
  const text = detail && detail !== statusName ? ` (${detail})` : '';
  const where = ctx ? ` in ${describeInstr(ctx)}` : '';
  return `${call} failed: ${statusName}${text}${where}${hint ? `. ${hint}` : ''}`;
}

/** cuBLAS status codes (cublas_api.h); cuBLASLt returns the same enum. */
const CUBLAS_STATUS_NAMES: Readonly<Record<number, string>> = {
  0: 'CUBLAS_STATUS_SUCCESS',
  1: 'CUBLAS_STATUS_NOT_INITIALIZED',
  3: 'CUBLAS_STATUS_ALLOC_FAILED',
  7: 'CUBLAS_STATUS_INVALID_VALUE',
  8: 'CUBLAS_STATUS_ARCH_MISMATCH',
  11: 'CUBLAS_STATUS_MAPPING_ERROR',
  13: 'CUBLAS_STATUS_EXECUTION_FAILED',
  14: 'CUBLAS_STATUS_INTERNAL_ERROR',
  15: 'CUBLAS_STATUS_NOT_SUPPORTED',
  16: 'CUBLAS_STATUS_LICENSE_ERROR',
};

export function cublasStatusName(status: number): string {
  return CUBLAS_STATUS_NAMES[status] ?? `CUBLAS_STATUS_${status}`;
}

/** Short hints for statuses whose fix is not obvious from the name. */
export function driverHint(statusName: string): string | undefined {
  switch (statusName) {
    case 'CUDA_ERROR_NO_BINARY_FOR_GPU':
    case 'CUDA_ERROR_INVALID_IMAGE':
      return 'the kernels were built for another GPU architecture; recompile the plan for this device';
    case 'CUDA_ERROR_OUT_OF_MEMORY':
      return 'the plan needs more device memory than is free; check `paradit inspect` for its peak';
    case 'CUDA_ERROR_ILLEGAL_ADDRESS':
      return 'a kernel read or wrote outside its buffers; the context is unusable now';
    case 'CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED':
    case 'CUDA_ERROR_STREAM_CAPTURE_INVALIDATED':
      return 'a call is not allowed while capturing a CUDA graph; run with graphs off to isolate it';
    default:
      return undefined;
  }
}
