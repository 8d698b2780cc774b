/**
 * FP8 gemms mapped onto cuBLASLt (gemm-layout.ts): e4m3 operand types, the TN form, and the scale
 * swap (our per-token scale is cuBLASLt's B scale, our per-channel scale its A scale). A pure
 * column-major model of OUTER_VEC_32F scaling (D[i,j] = sA[i] sB[j] sum_k op(A)[i,k] op(B)[k,j])
 * run on the translated call reproduces linear_fp8's row-major result; bad FP8 forms are refused.
 */
import { CUBLASLT_MATRIX_SCALE_OUTER_VEC_32F, GemmOperand, GemmSpec, LtLayout, toColumnMajor } from '../src/cuda/gemm-layout';

const op = (ptr: bigint, rows: number, cols: number, dtype: GemmOperand['dtype'] = 'f8e4m3fn'): GemmOperand => ({ ptr, dtype, rows, cols, ld: cols, batchStride: 0 });

describe('FP8 gemm mapping to cuBLASLt', () => {
  const [m, n, k] = [3, 4, 16];
  const spec: GemmSpec = {
    m, n, k, batch: 1,
    a: op(0x100n, m, k), transA: false, b: op(0x200n, n, k), transB: true, out: op(0x300n, m, n, 'bf16'),
    epilogue: 'none', alpha: 1, scaleA: 0x400n, scaleB: 0x500n,
  };

  it('uses CUDA_R_8F_E4M3 operands, a bf16 D, the TN form and swapped outer-vector scales', () => {
    const lt = toColumnMajor(spec);
    expect([lt.A.type, lt.B.type, lt.D.type]).toEqual([28, 28, 14]);
    expect([lt.transa, lt.transb]).toEqual([1, 0]);
    expect(lt.scales).toEqual({ a: 0x500n, b: 0x400n, mode: CUBLASLT_MATRIX_SCALE_OUTER_VEC_32F });
    expect(CUBLASLT_MATRIX_SCALE_OUTER_VEC_32F).toBe(3);
  });

  it('the translated call computes q . wq^T * s_m * ws_n (a model of cuBLASLt outer-vector scaling)', () => {
    const lt = toColumnMajor(spec);
    const Q = Float64Array.from({ length: m * k }, (_, i) => ((i * 7) % 9) - 4);
    const W = Float64Array.from({ length: n * k }, (_, i) => ((i * 5) % 11) - 5);
    const sTok = [0.5, 2, 0.25];
    const sCh = [1, 3, 0.125, 4];
    const mem = new Map<bigint, Float64Array>([[0x100n, Q], [0x200n, W], [0x400n, Float64Array.from(sTok)], [0x500n, Float64Array.from(sCh)]]);
    const at = (l: LtLayout, r: number, c: number) => mem.get(l.ptr)![c * l.ld + r]!;
    const D = new Float64Array(m * n);
    const Mp = lt.D.rows; // = n
    const Np = lt.D.cols; // = m
    for (let i = 0; i < Mp; i++)
      for (let j = 0; j < Np; j++) {
        let acc = 0;
        for (let kk = 0; kk < k; kk++) acc += (lt.transa ? at(lt.A, kk, i) : at(lt.A, i, kk)) * (lt.transb ? at(lt.B, j, kk) : at(lt.B, kk, j));
        D[j * lt.D.ld + i] = mem.get(lt.scales!.a)![i]! * mem.get(lt.scales!.b)![j]! * acc;
      }
    for (let r = 0; r < m; r++)
      for (let c = 0; c < n; c++) {
        let acc = 0;
        for (let kk = 0; kk < k; kk++) acc += Q[r * k + kk]! * W[c * k + kk]!;
        expect(D[r * n + c]).toBeCloseTo(acc * sTok[r]! * sCh[c]!, 12);
      }
  });

  it('refuses FP8 forms cuBLASLt does not take, saying why', () => {
    expect(() => toColumnMajor({ ...spec, b: op(0x200n, k, n), transB: false })).toThrow(/TN form/);
    expect(() => toColumnMajor({ ...spec, scaleB: undefined })).toThrow(/needs both scaleA and scaleB/);
    expect(() => toColumnMajor({ ...spec, a: op(0x100n, m, k, 'bf16') })).toThrow(/a and b must be f8e4m3fn, got bf16/);
    expect(() => toColumnMajor({ ...spec, k: 8, a: op(0x100n, m, 8), b: op(0x200n, n, 8) })).toThrow(/multiples of 16/);
    // e4m3 without scales is not a plain gemm either
    expect(() => toColumnMajor({ ...spec, scaleA: undefined, scaleB: undefined })).toThrow(/dtype f8e4m3fn; cuBLASLt gemms take f32, f16 or bf16/);
  });
});
