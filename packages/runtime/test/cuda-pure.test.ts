/**
 * The CUDA runtime's pure parts (no GPU, no koffi): kernel-parameter packing, the row-major ->
 * cuBLASLt column-major gemm mapping (checked numerically against a direct row-major product),
 * input/output conversion, error formatting and the plan-target refusal rules.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tensor, bf16BitsToF32 } from '@paradit/ir';
import { layoutKernelParams, resolveKernelArg, writeKernelParams, ResolvedArg } from '../src/cuda/params';
import { CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE, GemmOperand, GemmSpec, LtLayout, addressAlignment, toColumnMajor } from '../src/cuda/gemm-layout';
import { inputBytes, outputTensor } from '../src/cuda/convert';
import { cublasStatusName, describeInstr, formatCudaError } from '../src/cuda/errors';
import { checkPlanTarget, parseArch } from '../src/cuda/target';
import { archForDevice, nvrtcOptions } from '../src/cuda/nvrtc';
import { PLAN_DTYPE_BYTES } from '../src/plan/bytes';
import { checkBuffers, readPlanFiles } from '../src/cuda/plan-files';
import type { BufferDecl, Plan } from '../src/plan/schema';
import { writeSmokePlan } from '../../../bench/runtime/smoke-plan';
import { gemmTuneKey } from '../src/cuda/gemm-tune';
import type { PreparedGemm } from '../src/cuda/cublaslt';

describe('kernel parameter packing', () => {
  const args: ResolvedArg[] = [
    { kind: 'ptr', value: 0x7f0000001000n },
    { kind: 'i32', value: -5 },
    { kind: 'i64', value: -(2n ** 40n) },
    { kind: 'f32', value: 0.5 },
    { kind: 'i32', value: 7 },
    { kind: 'ptr', value: 0x10n },
  ];

  it('aligns each value naturally and puts the pointer array after them', () => {
    const l = layoutKernelParams(args);
    expect(l.valueOffsets).toEqual([0, 8, 16, 24, 28, 32]);
    expect(l.arrayOffset).toBe(40);
    expect(l.bytes).toBe(40 + 6 * 8);
  });

  it('writes values and pointers to them at the block address', () => {
    const l = layoutKernelParams(args);
    const dv = new DataView(new ArrayBuffer(l.bytes));
    const base = 0x5000n;
    expect(writeKernelParams(dv, base, args, l)).toBe(base + 40n);
    expect(dv.getBigUint64(0, true)).toBe(0x7f0000001000n);
    expect(dv.getInt32(8, true)).toBe(-5);
    expect(dv.getBigInt64(16, true)).toBe(-(2n ** 40n));
    expect(dv.getFloat32(24, true)).toBe(0.5);
    expect(dv.getInt32(28, true)).toBe(7);
    for (let i = 0; i < args.length; i++) expect(dv.getBigUint64(40 + 8 * i, true)).toBe(base + BigInt(l.valueOffsets[i]!));
  });

  it('resolves buffers to space base + offset and rejects i32 overflow', () => {
    const addr = (b: number) => 0x1000n + BigInt(b) * 256n;
    expect(resolveKernelArg({ buf: 3 }, addr, 'k')).toEqual({ kind: 'ptr', value: 0x1300n });
    expect(resolveKernelArg({ i64: 5 }, addr, 'k')).toEqual({ kind: 'i64', value: 5n });
    expect(() => resolveKernelArg({ i32: 2 ** 31 }, addr, "kernel 'k'")).toThrow("kernel 'k': i32 argument 2147483648 does not fit 32 bits");
  });
});

/** D = op(A) op(B) in cuBLAS's column-major convention, reading operands from flat arrays. */
function columnMajorGemm(g: ReturnType<typeof toColumnMajor>, mem: Map<bigint, Float64Array>, batch: number): Float64Array {
  const at = (l: LtLayout, b: number, r: number, c: number) => mem.get(l.ptr)![b * l.batchStride + c * l.ld + r]!;
  const Mp = g.D.rows;
  const Np = g.D.cols;
  const Kp = g.transa ? g.A.rows : g.A.cols;
  const out = new Float64Array(mem.get(g.D.ptr)!.length);
  for (let b = 0; b < batch; b++)
    for (let i = 0; i < Mp; i++)
      for (let j = 0; j < Np; j++) {
        let acc = 0;
        for (let k = 0; k < Kp; k++) acc += (g.transa ? at(g.A, b, k, i) : at(g.A, b, i, k)) * (g.transb ? at(g.B, b, j, k) : at(g.B, b, k, j));
        out[b * g.D.batchStride + j * g.D.ld + i] = g.alpha * acc;
      }
  return out;
}

describe('gemm mapping to cuBLASLt column-major', () => {
  const op = (ptr: bigint, rows: number, cols: number, ld = cols, batchStride = 0): GemmOperand => ({ ptr, dtype: 'bf16', rows, cols, ld, batchStride });

  it.each([
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ])('matches the row-major product (transA %s, transB %s, batched, padded ld)', (transA, transB) => {
    const [m, n, k, batch] = [3, 5, 4, 2];
    const lda = (transA ? m : k) + 2;
    const ldb = (transB ? k : n) + 1;
    const a = op(0x100n, transA ? k : m, transA ? m : k, lda, 32);
    const b = op(0x200n, transB ? n : k, transB ? k : n, ldb, 0); // shared across the batch
    const o = op(0x300n, m, n, n + 3, 40);
    const A = Float64Array.from({ length: 64 }, (_, i) => ((i * 7) % 11) - 5);
    const B = Float64Array.from({ length: 64 }, (_, i) => ((i * 5) % 13) - 6);
    const spec: GemmSpec = { m, n, k, batch, a, transA, b, transB, out: o, epilogue: 'none', alpha: 0.5 };
    const lt = toColumnMajor(spec);
    const got = columnMajorGemm(lt, new Map([[0x100n, A], [0x200n, B], [0x300n, new Float64Array(80)]]), batch);
    for (let bi = 0; bi < batch; bi++)
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let kk = 0; kk < k; kk++) {
            const av = transA ? A[bi * 32 + kk * lda + i]! : A[bi * 32 + i * lda + kk]!;
            const bv = transB ? B[j * ldb + kk]! : B[kk * ldb + j]!;
            acc += av * bv;
          }
          expect(got[bi * 40 + i * (n + 3) + j]).toBeCloseTo(0.5 * acc, 12);
        }
  });

  const base: GemmSpec = { m: 8, n: 16, k: 4, batch: 1, a: op(0n, 8, 4), transA: false, b: op(0n, 4, 16), transB: false, out: op(0n, 8, 16), epilogue: 'none', alpha: 1 };

  it('uses fp32 compute without TF32 and maps epilogues', () => {
    expect(toColumnMajor({ ...base, a: { ...base.a, dtype: 'f32' }, b: { ...base.b, dtype: 'f32' }, out: { ...base.out, dtype: 'f32' } }).computeType).toBe(CUBLAS_COMPUTE_32F);
    expect(toColumnMajor(base).epilogue).toBe(CUBLASLT_EPILOGUE.DEFAULT);
    const bias = { ptr: 0x40n, dtype: 'bf16' as const };
    expect(toColumnMajor({ ...base, bias }).epilogue).toBe(CUBLASLT_EPILOGUE.BIAS);
    expect(toColumnMajor({ ...base, bias, epilogue: 'gelu_tanh' }).epilogue).toBe(CUBLASLT_EPILOGUE.GELU_BIAS);
    expect(toColumnMajor({ ...base, epilogue: 'gelu_tanh' }).epilogue).toBe(CUBLASLT_EPILOGUE.GELU);
    const erf = toColumnMajor({ ...base, bias, epilogue: 'gelu_erf' });
    expect([erf.epilogue, erf.postOp]).toEqual([CUBLASLT_EPILOGUE.BIAS, 'gelu_erf']);
    expect(toColumnMajor({ ...base, epilogue: 'silu' }).postOp).toBe('silu');
  });

  it('rejects views that do not match m, n, k and integer operands', () => {
    expect(() => toColumnMajor({ ...base, b: op(0n, 5, 16) })).toThrow('gemm operand b: expected a [4, 16] view, got [5, 16]');
    expect(() => toColumnMajor({ ...base, out: op(0n, 8, 16, 8) })).toThrow('leading dimension 8 is smaller than its 16 columns');
    expect(() => toColumnMajor({ ...base, a: { ...base.a, dtype: 'i32' } })).toThrow('gemm operand a has dtype i32');
  });

  it('derives alignment hints from addresses', () => {
    expect(addressAlignment(0x7f0000000000n)).toBe(256);
    expect(addressAlignment(0x1002n)).toBe(2);
    expect(addressAlignment(0x1010n)).toBe(16);
  });
});

describe('io conversion', () => {
  const decl = (dtype: BufferDecl['dtype'], shape: number[]): BufferDecl => ({ id: 0, name: 'x', dtype, shape, space: 'io', offset: 0, bytes: shape.reduce((a, b) => a * b, 1) * PLAN_DTYPE_BYTES[dtype] });

  it('rounds f32 inputs to bf16 to nearest even and reads them back', () => {
    // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties to even (1); 1 + 3*2^-8 rounds up to 1 + 2^-6.
    const t = new Tensor('f32', [4], Float32Array.of(1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5, 65504));
    const bytes = inputBytes(t, decl('bf16', [4]), 'x');
    const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, 4);
    expect(Array.from(bits, (b) => bf16BitsToF32(b))).toEqual([1, 1 + 2 ** -6, -2.5, 65536]);
    expect(outputTensor(bytes, decl('bf16', [4])).toArray()).toEqual([1, 1 + 2 ** -6, -2.5, 65536]);
  });

  it('names the input on a shape or kind mismatch', () => {
    expect(() => inputBytes(Tensor.zeros('f32', [2, 3]), decl('f32', [3, 2]), 'latents')).toThrow("input 'latents': expected f32[3, 2], got f32[2, 3]");
    expect(() => inputBytes(Tensor.zeros('i64', [1]), decl('bf16', [1]), 'timestep')).toThrow("input 'timestep': expected bf16[1], got a i64 tensor");
  });

  it('packs bool conditions as bytes', () => {
    expect(Array.from(inputBytes(new Tensor('bool', [2], Float64Array.of(1, 0)), decl('bool', [2]), 'flag'))).toEqual([1, 0]);
  });
});

describe('error messages', () => {
  it('name the call, the status, the kernel and the ONNX nodes', () => {
    const ctx = { index: '7.then.2', op: 'kernel' as const, kernel: 'fused_norm_3', origin: ['/blocks.0/norm/Mul', '/blocks.0/norm/Add'] };
    expect(formatCudaError('cuLaunchKernel', 'CUDA_ERROR_INVALID_VALUE', 'invalid argument', ctx)).toBe(
      "cuLaunchKernel failed: CUDA_ERROR_INVALID_VALUE (invalid argument) in kernel 'fused_norm_3' (instruction 7.then.2; ONNX nodes /blocks.0/norm/Mul, /blocks.0/norm/Add)",
    );
    expect(formatCudaError('cuInit', 'CUDA_ERROR_NO_DEVICE', undefined)).toBe('cuInit failed: CUDA_ERROR_NO_DEVICE');
  });

  it('shorten long origins and name gemms by op', () => {
    const origin = Array.from({ length: 9 }, (_, i) => `n${i}`);
    expect(describeInstr({ index: '3', op: 'gemm', origin })).toBe('gemm (instruction 3; ONNX nodes n0, n1, n2, n3, n4, n5, ... (3 more))');
    expect(cublasStatusName(15)).toBe('CUBLAS_STATUS_NOT_SUPPORTED');
    expect(cublasStatusName(99)).toBe('CUBLAS_STATUS_99');
  });
});

describe('plan target checks', () => {
  const h100 = { name: 'NVIDIA H100 80GB HBM3', major: 9, minor: 0 };
  const target = (arch: string, backend: 'cuda' | 'cpu' = 'cuda'): Plan['target'] => ({ backend, arch, dtype: 'bf16', mesh: { cfg: 1, ring: 1, ulysses: 1 } });

  it('accepts sm_90a on an H100 and uses its cubin', () => {
    expect(checkPlanTarget(target('sm_90a'), true, h100)).toEqual({ ok: true, cubinUsable: true });
  });

  it('runs older generic plans through NVRTC', () => {
    expect(checkPlanTarget(target('sm_80'), true, h100)).toEqual({ ok: true, cubinUsable: false });
  });

  it('refuses other backends, arch-specific plans for another GPU, newer archs and meshes', () => {
    expect(checkPlanTarget(target('sm_90a', 'cpu'), false, h100).reason).toMatch(/compiled for the cpu backend; recompile with --target cuda/);
    const blackwell = checkPlanTarget(target('sm_90a'), true, { name: 'B200', major: 10, minor: 0 });
    expect(blackwell.ok).toBe(false);
    expect(blackwell.reason).toMatch(/compiled for sm_90a.*compute capability 9.0.*B200 \(compute capability 10.0\); recompile/);
    expect(checkPlanTarget(target('sm_100'), false, h100).reason).toMatch(/needs sm_100 or newer/);
    expect(checkPlanTarget({ ...target('sm_90a'), mesh: { cfg: 2, ring: 1, ulysses: 4 } }, true, h100).reason).toMatch(/sharded over a mesh/);
    expect(checkPlanTarget(target('gfx942'), false, h100).reason).toMatch(/not an sm_XY/);
  });

  it('parses arch names', () => {
    expect(parseArch('sm_90a')).toEqual({ major: 9, minor: 0, specific: true });
    expect(parseArch('sm_120')).toEqual({ major: 12, minor: 0, specific: false });
    expect(archForDevice(9, 0)).toBe('sm_90a');
    expect(archForDevice(8, 9)).toBe('sm_89');
  });

  it('builds NVRTC options without nvcc-only flags', () => {
    expect(nvrtcOptions('sm_90a', ['-std=c++17', '-gencode', '--use_fast_math'], '/inc')).toEqual(['--gpu-architecture=sm_90a', '-std=c++17', '-I/inc', '--use_fast_math']);
  });
});

describe('plan files', () => {
  it('reads back the hand-built smoke plan and checks buffer placement', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-cuda-plan-'));
    const written = writeSmokePlan(dir, 'bf16');
    const files = readPlanFiles(dir);
    expect(files.plan).toEqual(written);
    expect(files.source).toContain('extern "C" __global__ void smoke_affine');
    expect(files.cubin).toBeUndefined();
    expect(() => checkBuffers(files.plan)).not.toThrow();
    const broken = { ...files.plan, spaces: { ...files.plan.spaces, arena: 256 } };
    expect(() => checkBuffers(broken)).toThrow("buffer 9 't' ([0, 4096) in arena) lies outside the arena space (256 bytes)");
    fs.rmSync(dir, { recursive: true });
  });
});

describe('gemm tuning keys', () => {
  const lt = (ptr: bigint) =>
    toColumnMajor({ m: 8, n: 16, k: 4, batch: 1, a: { ptr, dtype: 'bf16', rows: 8, cols: 4, ld: 4, batchStride: 0 }, transA: false,
      b: { ptr, dtype: 'bf16', rows: 4, cols: 16, ld: 16, batchStride: 0 }, transB: false, out: { ptr, dtype: 'bf16', rows: 8, cols: 16, ld: 16, batchStride: 0 }, epilogue: 'none', alpha: 1 });
  const key = (ptr: bigint) => gemmTuneKey({ g: lt(ptr) } as unknown as PreparedGemm);

  it('share a tuned algorithm between gemms that differ only in (equally aligned) addresses', () => {
    expect(key(0x7f0000000000n)).toBe(key(0x7f0000100000n));
    expect(key(0x7f0000000000n)).not.toBe(key(0x7f0000000010n)); // 16-byte aligned: other algorithms apply
  });
});
