/**
 * How a plan gemm (row-major views, see plan/schema.ts) maps onto cuBLASLt's column-major API.
 * A row-major [R, C] view with leading dimension L is the column-major [C, R] matrix with the same
 * L, so out = opA(A) @ opB(B) (row-major) is out^T = opB(B)^T @ opA(A)^T (column-major): cuBLASLt's
 * first operand is our B, its second our A, M' = n, N' = m, and the bias (length n) runs along
 * cuBLASLt's rows, which is what its BIAS epilogue adds. Pure: unit-tested without a GPU.
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
}

/** cuBLASLt constants (cublasLt.h / library_types.h). */
const CUDA_R = { f32: 0, f16: 2, bf16: 14 } as const;
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
}

function floatType(d: PlanDType, what: string): number {
  if (d === 'f32' || d === 'f16' || d === 'bf16') return CUDA_R[d];
  throw new Error(`gemm ${what} has dtype ${d}; cuBLASLt gemms take f32, f16 or bf16`);
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
  const layout = (v: GemmOperand, what: string): LtLayout => ({
    type: floatType(v.dtype, what),
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
