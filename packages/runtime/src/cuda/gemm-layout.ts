/**
 * How a plan gemm (row-major views, see plan/schema.ts) maps onto cuBLASLt's column-major API.
 * A row-major [R, C] view with leading dimension L is the column-major [C, R] matrix with the same
 * L, so out = opA(A) @ opB(B) (row-major) is out^T = opB(B)^T @ opA(A)^T (column-major): cuBLASLt's
 * first operand is our B, its second our A, M' = n, N' = m, and the bias (length n) runs along
 * cuBLASLt's rows, which is what its BIAS epilogue adds. Pure: unit-tested without a GPU.
 *
 * FP8 gemms (docs/fp8.md; plan `scaleA`/`scaleB`): a and b are e4m3 (CUDA_R_8F_E4M3), out bf16,
 * fp32 compute. Hopper's FP8 kernels take only the "TN" form (cuBLASLt's A transposed, B not),
 * which is our transB = true, transA = false: the compiler stores e4m3 weights [N,K]. The per-row
 * scale of our a (one per token) becomes cuBLASLt's B scale and the per-column scale of our b (one
 * per output channel) its A scale, both in outer-vector mode (CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F,
 * cuBLASLt 12.9+): D = scaleA_lt[i] * scaleB_lt[j] * sum_k A[k,i] B[k,j] + bias.
 */
import type { PlanDType } from '../plan/schema';

export type GemmEpilogue = 'none' | 'gelu_tanh' | 'gelu_erf' | 'silu';

export interface GemmOperand {
  readonly ptr: bigint;
  readonly dtype: PlanDType;
  readonly rows: number;
  readonly cols: number;
  readonly ld: number;
  /** Elements between consecutive matrices of the batch (0 = one matrix shared by all). */
  readonly batchStride: number;
}

export interface GemmSpec {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly batch: number;
  readonly a: GemmOperand;
  readonly transA: boolean;
  readonly b: GemmOperand;
  readonly transB: boolean;
  readonly out: GemmOperand;
  readonly bias?: { readonly ptr: bigint; readonly dtype: PlanDType };
  readonly epilogue: GemmEpilogue;
  readonly alpha: number;
  /** FP8 gemm: device pointers of the f32 scales per row of opA(a) (m) and per column of opB(b) (n). */
  readonly scaleA?: bigint;
  readonly scaleB?: bigint;
}

/**
 * cuBLASLt constants (cublasLt.h / library_types.h). The toolkit here has no cublasLt.h, so the
 * FP8 values were checked against NVIDIA's nvmath-python enum listings and public header mirrors:
 * CUDA_R_8F_E4M3 = 28; cublasLtMatmulMatrixScale_t OUTER_VEC_32F = 3.
 */
const CUDA_R = { f32: 0, f16: 2, bf16: 14, f8e4m3fn: 28 } as const;
export const CUBLASLT_MATRIX_SCALE_OUTER_VEC_32F = 3;
export const CUBLAS_COMPUTE_32F = 68;
const CUBLAS_OP = { N: 0, T: 1 } as const;
export const CUBLASLT_EPILOGUE = { DEFAULT: 1, BIAS: 4, GELU: 32, GELU_BIAS: 36 } as const;

export interface LtLayout {
  readonly type: number;
  readonly rows: number;
  readonly cols: number;
  readonly ld: number;
  readonly batch: number;
  readonly batchStride: number;
  readonly ptr: bigint;
}

export interface LtGemm {
  readonly computeType: number;
  readonly scaleType: number;
  readonly transa: number;
  readonly transb: number;
  /** cuBLASLt "A" (our B), "B" (our A) and "D" (= "C", beta 0). */
  readonly A: LtLayout;
  readonly B: LtLayout;
  readonly D: LtLayout;
  readonly epilogue: number;
  readonly bias?: { readonly ptr: bigint; readonly type: number };
  /** Epilogue cuBLASLt cannot apply; the runtime runs a helper kernel over D afterwards. */
  readonly postOp: 'none' | 'gelu_erf' | 'silu';
  readonly alpha: number;
  /** FP8: cuBLASLt's A and B scale vectors (outer-vector mode). */
  readonly scales?: { readonly a: bigint; readonly b: bigint; readonly mode: number };
}

function floatType(d: PlanDType, what: string, fp8 = false): number {
  if (d === 'f32' || d === 'f16' || d === 'bf16') return CUDA_R[d];
  if (fp8 && d === 'f8e4m3fn') return CUDA_R.f8e4m3fn;
  throw new Error(`gemm ${what} has dtype ${d}; cuBLASLt gemms take f32, f16 or bf16${fp8 ? ' (FP8 gemms: f8e4m3fn operands)' : ''}`);
}

/** The FP8 gemm's extra rules: e4m3 a and b, the TN form, batch 1, both scales, a 16-bit output. */
function checkFp8(g: GemmSpec): void {
  if (g.scaleA === undefined || g.scaleB === undefined) throw new Error('FP8 gemm: needs both scaleA and scaleB');
  if (g.a.dtype !== 'f8e4m3fn' || g.b.dtype !== 'f8e4m3fn') throw new Error(`FP8 gemm: a and b must be f8e4m3fn, got ${g.a.dtype} and ${g.b.dtype}`);
  if (g.transA || !g.transB) throw new Error('FP8 gemm: needs transA = false, transB = true (cuBLASLt takes FP8 only in the TN form; the compiler stores e4m3 weights [N,K])');
  if (g.batch !== 1) throw new Error(`FP8 gemm: batch must be 1, got ${g.batch}`);
  if (g.out.dtype !== 'bf16' && g.out.dtype !== 'f16' && g.out.dtype !== 'f32') throw new Error(`FP8 gemm: output must be bf16, f16 or f32, got ${g.out.dtype}`);
  if (g.k % 16 !== 0 || g.a.ld % 16 !== 0 || g.b.ld % 16 !== 0) throw new Error(`FP8 gemm: k and the leading dimensions must be multiples of 16 (k=${g.k}, lda=${g.a.ld}, ldb=${g.b.ld})`);
}

function checkView(v: GemmOperand, rows: number, cols: number, what: string): void {
  if (v.rows !== rows || v.cols !== cols) {
    throw new Error(`gemm ${what}: expected a [${rows}, ${cols}] view, got [${v.rows}, ${v.cols}]`);
  }
  if (v.ld < v.cols) throw new Error(`gemm ${what}: leading dimension ${v.ld} is smaller than its ${v.cols} columns`);
}

/** Translates a row-major gemm into cuBLASLt's column-major call. Throws on inconsistent shapes. */
export function toColumnMajor(g: GemmSpec): LtGemm {
  checkView(g.a, g.transA ? g.k : g.m, g.transA ? g.m : g.k, 'operand a');
  checkView(g.b, g.transB ? g.n : g.k, g.transB ? g.k : g.n, 'operand b');
  checkView(g.out, g.m, g.n, 'output');
  const fp8 = g.scaleA !== undefined || g.scaleB !== undefined;
  if (fp8) checkFp8(g);
  const layout = (v: GemmOperand, what: string): LtLayout => ({
    type: floatType(v.dtype, what, fp8 && what !== 'output'),
    rows: v.cols,
    cols: v.rows,
    ld: v.ld,
    batch: g.batch,
    batchStride: g.batch > 1 ? v.batchStride : 0,
    ptr: v.ptr,
  });
  const hasBias = g.bias !== undefined;
  let epilogue: number = hasBias ? CUBLASLT_EPILOGUE.BIAS : CUBLASLT_EPILOGUE.DEFAULT;
  let postOp: LtGemm['postOp'] = 'none';
  if (g.epilogue === 'gelu_tanh') epilogue = hasBias ? CUBLASLT_EPILOGUE.GELU_BIAS : CUBLASLT_EPILOGUE.GELU;
  else if (g.epilogue === 'gelu_erf' || g.epilogue === 'silu') postOp = g.epilogue;
  return {
    computeType: CUBLAS_COMPUTE_32F, // fp32 accumulation; never TF32 (issue 6)
    scaleType: CUDA_R.f32,
    transa: g.transB ? CUBLAS_OP.T : CUBLAS_OP.N,
    transb: g.transA ? CUBLAS_OP.T : CUBLAS_OP.N,
    A: layout(g.b, 'operand b'),
    B: layout(g.a, 'operand a'),
    D: layout(g.out, 'output'),
    epilogue,
    ...(g.bias ? { bias: { ptr: g.bias.ptr, type: floatType(g.bias.dtype, 'bias') } } : {}),
    postOp,
    alpha: g.alpha,
    // Our a is cuBLASLt's B and our b its A: the scales swap with them.
    ...(fp8 ? { scales: { a: g.scaleB!, b: g.scaleA!, mode: CUBLASLT_MATRIX_SCALE_OUTER_VEC_32F } } : {}),
  };
}

/** The largest power of two (at most 256) dividing a device address: cuBLASLt's alignment hint. */
export function addressAlignment(ptr: bigint): number {
  let a = 1;
  while (a < 256 && ptr % BigInt(a * 2) === 0n) a *= 2;
  return a;
}

export function gemmFlops(g: { m: number; n: number; k: number; batch: number }): number {
  return 2 * g.m * g.n * g.k * g.batch;
}
