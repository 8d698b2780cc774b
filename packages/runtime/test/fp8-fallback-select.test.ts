/**
 * When the runtime takes the FP8 scale-epilogue fallback (program.ts): a scaled FP8 gemm whose
 * heuristic has no algorithm is prepared again unscaled into the fp32 scratch, with the epilogue
 * kernel after it (its packed arguments: out, ld, scratch, scales, bias, act, m, n) and one log
 * line; an unscaled gemm without an algorithm either, or a rank without scratch, keeps the heuristic's error. A fake
 * cuBLASLt stands in (no GPU); koffi packs the parameters (skips with the reason without it).
 */
import type { BufferDecl, Instr } from '../src/plan/schema';
import { CudaError } from '../src/cuda/errors';
import type { LtGemm } from '../src/cuda/gemm-layout';
import { prepareProgram } from '../src/cuda/program';
import type { PrepareEnv } from '../src/cuda/program';
import { skipReason } from '../../../tests/skip-reason';

let koffiOk = true;
try {
  require('koffi');
} catch {
  koffiOk = false;
}
if (!koffiOk) skipReason(__filename, 'skipped: koffi is not installed (kernel parameters are packed in native memory)');
const maybe = koffiOk ? describe : describe.skip;

const buf = (id: number, dtype: BufferDecl['dtype'], shape: number[], bytes: number): BufferDecl => ({ id, name: `b${id}`, dtype, shape, space: 'arena', offset: id * 0x10000, bytes });
const [M, N, K] = [4, 32, 16];
const buffers = new Map<number, BufferDecl>([
  [0, buf(0, 'f8e4m3fn', [M, K], M * K)],
  [1, buf(1, 'f8e4m3fn', [N, K], N * K)],
  [2, buf(2, 'bf16', [M, N], M * N * 2)],
  [3, buf(3, 'f32', [M], M * 4)],
  [4, buf(4, 'f32', [N], N * 4)],
  [5, buf(5, 'bf16', [N], N * 2)],
]);
const view = (b: number, rows: number, cols: number) => ({ buf: b, elemOffset: 0, rows, cols, ld: cols, batchStride: 0 });
const gemm = (scaled: boolean): Instr => ({
  op: 'gemm', m: M, n: N, k: K, batch: 1, a: view(0, M, K), transA: false, b: view(1, N, K), transB: true, out: view(2, M, N),
  bias: 5, epilogue: 'none', alpha: 1, ...(scaled ? { scaleA: 3, scaleB: 4 } : {}), origin: ['blk.0.ff'],
} as Instr);

function envWith(noAlgorithmFor: (g: LtGemm) => boolean, scratch = true) {
  const prepared: LtGemm[] = [];
  const logs: string[] = [];
  const helpers: string[] = [];
  const env = {
    driver: {}, buffers, address: (id: number) => 0x1000000n + BigInt(id * 0x10000), planFunction: () => 0n,
    helperFunction: (name: string) => (helpers.push(name), 0x77n), maxSmemOptin: 0, workspace: 0n, workspaceBytes: 0,
    blocks: [], gemms: [], smemRaised: new Set(), events: 0, rank: 0, mesh: { cfg: 1, ring: 1, ulysses: 1 }, collectives: 'nccl', scratch: 0n, meanNeedsScale: false,
    lt: () => ({
      prepare: (g: LtGemm) => {
        if (noAlgorithmFor(g)) throw new CudaError('cublasLt', 'cublasLtMatmulAlgoGetHeuristic', 15, 'CUBLAS_STATUS_NOT_SUPPORTED', undefined, 'no algorithm');
        prepared.push(g);
        return { g };
      },
    }),
    ...(scratch ? { fp8Scratch: (bytes: number) => (expect(bytes).toBe(M * N * 4), 0xabc000n) } : {}),
    log: (l: string) => logs.push(l),
  } as unknown as PrepareEnv;
  return { env, prepared, logs, helpers };
}

maybe('FP8 gemm fallback selection', () => {
  it('no OUTER_VEC_32F algorithm: the unscaled gemm into the scratch, then the bf16 epilogue kernel', () => {
    const t = envWith((g) => g.scales !== undefined);
    const [p] = prepareProgram(t.env, [gemm(true)]);
    expect(p!.op).toBe('gemm');
    expect(t.prepared).toHaveLength(1);
    expect(t.prepared[0]!.scales).toBeUndefined();
    expect(t.prepared[0]!.D.ptr).toBe(0xabc000n);
    expect(t.helpers).toEqual(['paradit_fp8_epilogue_bf16']);
    expect(p!.op === 'gemm' && p!.post !== undefined).toBe(true);
    expect(t.logs).toHaveLength(1);
    expect(t.logs[0]).toMatch(/no outer-vector-scaled \(OUTER_VEC_32F\) algorithm for 4x32x16; using an unscaled e4m3 gemm with fp32 output \+ the paradit_fp8_epilogue_bf16 scale epilogue/);
  });

  it('a scaled algorithm exists: the scaled gemm, no epilogue kernel, no log', () => {
    const t = envWith(() => false);
    const [p] = prepareProgram(t.env, [gemm(true)]);
    expect(t.prepared[0]!.scales).toBeDefined();
    expect(p!.op === 'gemm' && p!.post === undefined).toBe(true);
    expect(t.logs).toEqual([]);
  });

  it('the unscaled gemm has no algorithm either, or the rank has no scratch: the heuristic error stands', () => {
    expect(() => prepareProgram(envWith(() => true).env, [gemm(true)])).toThrow(/no algorithm/);
    expect(() => prepareProgram(envWith(() => true, false).env, [gemm(true)])).toThrow(/no algorithm/);
  });
});
