/**
 * The FP8 gemm's scale-epilogue fallback (fp8-fallback.ts): the unscaled descriptor keeps the
 * operands and drops scales/bias for an fp32 D in the scratch (column-major [n x m], ld n); the
 * epilogue's arithmetic (host model of the kernel) on an fp32 accumulator of e4m3 products
 * reproduces linear_fp8's reference (the interpreter) within bf16 rounding; the helper module with
 * the epilogue kernels builds with nvcc for sm_90a (skips with the reason without nvcc).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Tensor, interpret, parseModule, quantizeWeightColumns } from '@paradit/ir';
import { GemmOperand, GemmSpec, toColumnMajor } from '../src/cuda/gemm-layout';
import { FP8_EPILOGUE_ACT, fp8EpilogueHost, fp8EpilogueKernelName, unscaledFp8Gemm } from '../src/cuda/fp8-fallback';
import { HELPER_KERNELS_SOURCE } from '../src/cuda/helper-kernels';
import { compareTensors } from '../src/compare';
import { skipReason } from '../../../tests/skip-reason';

const op = (ptr: bigint, rows: number, cols: number, dtype: GemmOperand['dtype'] = 'f8e4m3fn'): GemmOperand => ({ ptr, dtype, rows, cols, ld: cols, batchStride: 0 });

describe('FP8 scale-epilogue fallback', () => {
  it('the unscaled descriptor: same operands, no scales or bias, fp32 D [n x m] ld n in the scratch', () => {
    const [m, n, k] = [3, 32, 16];
    const spec: GemmSpec = {
      m, n, k, batch: 1, a: op(0x100n, m, k), transA: false, b: op(0x200n, n, k), transB: true,
      out: { ...op(0x300n, m, n, 'bf16'), ld: 48 }, bias: { ptr: 0x600n, dtype: 'bf16' },
      epilogue: 'none', alpha: 1, scaleA: 0x400n, scaleB: 0x500n,
    };
    const lt = toColumnMajor(spec);
    const u = unscaledFp8Gemm(lt, 0x9000n);
    expect(u.scales).toBeUndefined();
    expect(u.bias).toBeUndefined();
    expect([u.A, u.B, u.transa, u.transb]).toEqual([lt.A, lt.B, lt.transa, lt.transb]);
    expect(u.D).toEqual({ type: 0, rows: n, cols: m, ld: n, batch: 1, batchStride: 0, ptr: 0x9000n });
    expect(u.epilogue).toBe(1);
    expect(() => unscaledFp8Gemm(toColumnMajor({ ...spec, a: op(0x100n, m, k, 'bf16'), b: op(0x200n, n, k, 'bf16'), scaleA: undefined, scaleB: undefined }), 0n)).toThrow(/not an FP8 gemm/);
  });

  it('unscaled fp32 gemm + epilogue = linear_fp8 (bf16 out, with bias) within bf16 rounding', () => {
    const [M, K, N] = [8, 64, 48];
    let seed = 11;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
    const x = Tensor.from('f32', [M, K], Array.from({ length: M * K }, () => rnd() * 3));
    const w = Tensor.from('f32', [K, N], Array.from({ length: K * N }, () => rnd() * 0.2));
    const bias = Tensor.normalized('bf16', [N], Float32Array.from({ length: N }, () => rnd()));
    const { wq, ws } = quantizeWeightColumns(w, false);
    const [q, s] = interpret(parseModule(`graph main(%x: f32[${M},${K}]) {
      %q, %s = quantize_fp8_rows(%x)
      return %q, %s
    }`), [x]) as [Tensor, Tensor];
    const ref = interpret(parseModule(`graph main(%q: f8e4m3fn[${M},${K}], %s: f32[${M},1], %wq: f8e4m3fn[${N},${K}], %ws: f32[${N}], %b: bf16[${N}]) {
      %y = linear_fp8(%q, %s, %wq, %ws, %b) {oDtype=16, transB=1}
      return %y
    }`), [q, s, wq, ws, bias])[0]!;
    // The unscaled gemm: fp32 accumulation of exact e4m3 products, row-major [M, N].
    const acc = new Float32Array(M * N);
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let a = 0;
        for (let k = 0; k < K; k++) a = Math.fround(a + q.data[i * K + k]! * wq.data[j * K + k]!);
        acc[i * N + j] = a;
      }
    }
    const y = Tensor.normalized('bf16', [M, N], fp8EpilogueHost(acc, M, N, Float32Array.from(s.data), Float32Array.from(ws.data), Float32Array.from(bias.data), FP8_EPILOGUE_ACT.none));
    const c = compareTensors(y, ref);
    expect(c.relL2).toBeLessThan(2 ** -8); // at most one bf16 step apart where fp32 orderings differ
    const same = y.data.filter((v, i) => v === ref.data[i]).length;
    expect(same / (M * N)).toBeGreaterThan(0.9);
    // And it is not trivially equal to an unscaled result.
    expect(compareTensors(Tensor.normalized('bf16', [M, N], acc), ref).relL2).toBeGreaterThan(0.5);
  });

  it('silu / gelu_tanh epilogues apply after scale and bias', () => {
    const acc = Float32Array.from([2, -1]);
    const out = fp8EpilogueHost(acc, 1, 2, Float32Array.from([0.5]), Float32Array.from([2, 4]), Float32Array.from([1, 0]), FP8_EPILOGUE_ACT.silu);
    // v = [2*0.5*2 + 1, -1*0.5*4] = [3, -2]; silu(v) = v / (1 + e^-v)
    expect(out[0]).toBeCloseTo(3 / (1 + Math.exp(-3)), 6);
    expect(out[1]).toBeCloseTo(-2 / (1 + Math.exp(2)), 6);
    const g = fp8EpilogueHost(Float32Array.from([1]), 1, 1, Float32Array.from([1]), Float32Array.from([1]), undefined, FP8_EPILOGUE_ACT.gelu_tanh);
    expect(g[0]).toBeCloseTo(0.8411920, 6); // gelu_tanh(1)
  });
});

const NVCC = ['/usr/local/bin/nvcc', '/usr/local/cuda/bin/nvcc'].find((p) => fs.existsSync(p));
if (!NVCC) skipReason(__filename, 'skipped: nvcc not found at /usr/local/bin/nvcc or /usr/local/cuda/bin/nvcc (the epilogue kernel compile check)');
(NVCC ? test : test.skip)('the helper module with the FP8 epilogue kernels compiles with nvcc (sm_90a)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-fp8-epi-'));
  try {
    const cu = path.join(dir, 'helpers.cu');
    fs.writeFileSync(cu, HELPER_KERNELS_SOURCE);
    execFileSync(NVCC!, ['-gencode', 'arch=compute_90a,code=sm_90a', '-c', cu, '-o', path.join(dir, 'helpers.o')], { stdio: 'pipe' });
    expect(HELPER_KERNELS_SOURCE).toContain(`void ${fp8EpilogueKernelName('bf16')}`.replace('void ', ''));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
