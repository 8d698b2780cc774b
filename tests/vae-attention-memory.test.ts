/**
 * Bounded mid-block attention memory (issue 15, docs/vae.md "Mid-block attention memory").
 * decompose-attention takes attention whose whole fp32 score matrix would pass a budget in query
 * chunks. Guards against: the 1 GiB [16384 x 16384] score matrix of FLUX's VAE mid block at
 * 1024x1024 coming back (the full-size decoder's peak activation bytes), and chunking changing
 * the numbers (chunked vs unchunked decomposition, vs the interpreter; the tiny VAE fixtures'
 * CPU-backend plans vs the interpreter with a budget small enough to chunk them).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GraphBuilder, Module, Tensor, interpret, loadModel, mulberry32, tensorType } from '@paradit/ir';
import { compileModule, compileToPlan } from '@paradit/compiler';
import { decomposeAttention, queryChunkRows } from '@paradit/codegen-cuda';
import { compareTensors, listTestDataSets, openPlan, readTestDataSet } from '@paradit/runtime';
import { uniformTensor } from './support/harness';
import { buildFluxVaeDecoder, FLUX_VAE_FULL } from './models/flux-vae';

const MiB = 1024 * 1024;

test('queryChunkRows: whole when the scores fit, else the largest multiple of 64 under the budget', () => {
  // FLUX VAE mid block at 1024x1024: one row of scores is 16384 * 4 B = 64 KiB; 64 MiB / 64 KiB = 1024.
  expect(queryChunkRows(1, 1, 16384, 16384, 64 * MiB)).toBe(1024);
  // 512x512 image: S = 4096, scores 64 MiB exactly: one chunk.
  expect(queryChunkRows(1, 1, 4096, 4096, 64 * MiB)).toBe(4096);
  // 1000 rows of 4 KiB fit 4 MB: 976 -> 960 (a multiple of 64).
  expect(queryChunkRows(1, 1, 4096, 1024, 4_000_000)).toBe(960);
  // Under 64 rows: no rounding; at least one row.
  expect(queryChunkRows(2, 3, 64, 64, 2 * 3 * 64 * 4 * 5)).toBe(5);
  expect(queryChunkRows(1, 1, 64, 64, 1)).toBe(1);
});

const peak = (m: ReturnType<typeof buildFluxVaeDecoder>, budget: number): number => compileModule(m, { dtype: 'bf16', attentionScoreBudget: budget }).memory.spaces.arena;

test('FLUX VAE mid block at 128x128 latent: the 1 GiB score matrix is gone from the arena', () => {
  // conv_in, the mid block (resnet, attention over 16384 tokens of 512, resnet), norm, conv_out.
  const m = buildFluxVaeDecoder({ ...FLUX_VAE_FULL, widths: [512], layersPerBlock: 0 });
  const whole = peak(m, Number.MAX_SAFE_INTEGER);
  const chunked = peak(m, 64 * MiB);
  process.stdout.write(`FLUX VAE mid block (128x128 latent, bf16): peak activations ${(whole / MiB).toFixed(1)} MiB unchunked -> ${(chunked / MiB).toFixed(1)} MiB chunked\n`);
  // Unchunked: the fp32 scores alone are 16384^2 * 4 B = 1 GiB.
  expect(whole).toBeGreaterThanOrEqual(1024 * MiB);
  // Chunked: per chunk at most scores + probabilities in fp32 and P in bf16 (64 + 64 + 32 MiB), plus
  // q, k, v (fp32 casts 32 MiB each, bf16 16 MiB each) and a few 16 MiB [512 x 128 x 128] bf16 activations.
  expect(chunked).toBeLessThan(400 * MiB);
});

test('full-size FLUX VAE decoder (1024x1024): chunking lowers the whole decode peak to what the 1024x1024 up blocks need', () => {
  const m = buildFluxVaeDecoder(FLUX_VAE_FULL);
  const whole = peak(m, Number.MAX_SAFE_INTEGER);
  const chunked = peak(m, 64 * MiB);
  process.stdout.write(`full FLUX VAE decode (bf16, 1024x1024): peak activations ${(whole / MiB).toFixed(1)} MiB unchunked -> ${(chunked / MiB).toFixed(1)} MiB chunked (64 MiB score budget)\n`);
  expect(chunked).toBeLessThan(whole - 256 * MiB);
  // What is left is the last up blocks': [1, 256, 1024, 1024] bf16 is 512 MiB per activation.
  expect(chunked).toBeGreaterThanOrEqual(2 * 512 * MiB);
});

/** attention(q, k, v, mask?) with seeded inputs: S query rows, T keys, head dim H, a bool mask [1, 1, S, T] when asked. */
function attentionModule(op: 'attention' | 'attention_lse', S: number, T: number, H: number, withMask: boolean): { m: Module; inputs: Map<string, Tensor> } {
  const b = new GraphBuilder(18);
  const rand = mulberry32(15);
  const q = b.input('q', tensorType('f32', [1, 2, S, H]));
  const k = b.input('k', tensorType('f32', [1, 2, T, H]));
  const v = b.input('v', tensorType('f32', [1, 2, T, H]));
  const mask = withMask ? b.input('mask', tensorType('bool', [1, 1, S, T])) : null;
  const attrs = { scale: { kind: 'float' as const, value: 1 / Math.sqrt(H) }, numHeads: { kind: 'int' as const, value: 2 }, kvHeads: { kind: 'int' as const, value: 2 } };
  const outs = b.add(op, [q, k, v, ...(mask ? [mask] : [])], attrs, { name: 'attn', numOutputs: op === 'attention' ? 1 : 2 });
  const m = new Module(b.build(outs), { '': 18 }, { irVersion: 10, producerName: 'paradit-tests', producerVersion: '0.1.0' });
  const inputs = new Map<string, Tensor>([
    ['q', uniformTensor([1, 2, S, H], rand, { scale: 2 })],
    ['k', uniformTensor([1, 2, T, H], rand, { scale: 2 })],
    ['v', uniformTensor([1, 2, T, H], rand)],
  ]);
  // Query row 3 sees no key at all (zeros, not NaN); the others a random half.
  if (withMask) inputs.set('mask', Tensor.from('bool', [1, 1, S, T], Array.from({ length: S * T }, (_, i) => (Math.floor(i / T) === 3 ? 0 : rand() < 0.5 ? 1 : 0))));
  return { m, inputs };
}

describe.each([
  ['attention', false],
  ['attention', true],
  ['attention_lse', false],
  ['attention_lse', true],
] as const)('%s (mask %s): chunked decomposition', (op, withMask) => {
  const S = 40;
  const T = 24;
  const { m, inputs } = attentionModule(op, S, T, 8, withMask);
  // One query row of scores: 2 heads x 24 keys x 4 B = 192 B; a 1000 B budget gives chunks of 5 rows.
  const chunked = decomposeAttention(m, { all: true, scoreBudgetBytes: 1000 });
  const whole = decomposeAttention(m, { all: true });

  test('takes the queries in 8 chunks of 5 rows, Concat on axis 2', () => {
    const slices = chunked.graph.nodes.filter((n) => n.op === 'Slice' && n.inputs[0]?.shape[2] === S);
    expect(slices.map((n) => n.outputs[0]!.shape[2])).toEqual(withMask ? new Array<number>(16).fill(5) : new Array<number>(8).fill(5));
    const cats = chunked.graph.nodes.filter((n) => n.op === 'Concat');
    expect(cats).toHaveLength(op === 'attention' ? 1 : 2);
    expect(cats.every((n) => n.inputs.length === 8)).toBe(true);
    expect(whole.graph.nodes.some((n) => n.op === 'Concat')).toBe(false);
  });

  test('equals the unchunked decomposition bitwise and the fused op within 1e-6', () => {
    const a = interpret(chunked, inputs);
    const w = interpret(whole, inputs);
    const ref = interpret(m, inputs);
    a.forEach((t, i) => {
      expect(Array.from(t.data)).toEqual(Array.from(w[i]!.data));
      expect(compareTensors(t, ref[i]!).maxAbs).toBeLessThan(1e-6);
    });
    // The fully masked row: zeros in the output, -inf in the lse.
    if (withMask) {
      expect(Array.from(a[0]!.data.slice(3 * 8, 4 * 8))).toEqual(new Array<number>(8).fill(0));
      if (op === 'attention_lse') expect(a[1]!.data[3]).toBe(-Infinity);
    }
  });
});

test('a non-positive score budget is refused', () => {
  const { m } = attentionModule('attention', 8, 8, 8, false);
  expect(() => decomposeAttention(m, { all: true, scoreBudgetBytes: 0 })).toThrow(/score budget must be a positive byte count, got 0/);
});

const VAE = path.join(__dirname, 'vae');

const HAS_NVCC = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).status === 0;

/** The fixture's plan on the CPU backend: its output for the test latent, and the number of GEMMs. */
async function planOutput(folder: string, dtype: 'f32' | 'bf16', budget: number, nvcc = false): Promise<{ out: Tensor; chunks: number; cubin: string | null }> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-vae2-'));
  try {
    const r = await compileToPlan(path.join(VAE, folder), path.join(tmp, 'plan'), { dtype, nvcc: nvcc ? 'auto' : false, attentionScoreBudget: budget });
    const opened = await openPlan(path.join(tmp, 'plan'), { backend: 'cpu', verifyWeights: false });
    try {
      const z = readTestDataSet(listTestDataSets(path.join(VAE, folder))[0]!).inputs[0]!;
      const outs = await opened.executor.step(new Map([[r.plan.inputs[0]!.name, z]]));
      const chunks = r.compiled.lowered.program.filter((i) => i.op === 'gemm').length;
      return { out: outs.get(r.plan.outputs[0]!.name)!, chunks, cubin: r.plan.kernels.cubin };
    } finally {
      opened.dispose();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

describe.each(['flux_vae_tiny_dynamo', 'flux_vae_tiny_ts'])('%s: chunked mid-block attention on the CPU backend', (folder) => {
  // The mid block: 64 tokens (8x8 latent), one head of 32. A row of scores is 64 * 4 = 256 B; 4 KiB: 4 chunks of 16 rows.
  test.each([
    ['f32', 1e-5],
    ['bf16', 5e-2],
  ] as const)('%s plan: chunked equals unchunked and the interpreter (rel L2 < %s)', async (dtype, tol) => {
    const dir = path.join(VAE, folder);
    const z = readTestDataSet(listTestDataSets(dir)[0]!).inputs[0]!;
    const ref = interpret(loadModel(dir), [z])[0]!;
    // The bf16 chunked plan's kernels (Slice, Concat, the chunk GEMM epilogues) also go through nvcc where it is installed.
    const chunked = await planOutput(folder, dtype, 4096, dtype === 'bf16' && HAS_NVCC);
    if (dtype === 'bf16' && HAS_NVCC) expect(chunked.cubin).toBe('kernels/module.fatbin');
    const whole = await planOutput(folder, dtype, Number.MAX_SAFE_INTEGER);
    // Two GEMMs (scores, P.V) per chunk: 4 chunks add 6 GEMMs.
    expect(chunked.chunks - whole.chunks).toBe(6);
    expect(compareTensors(chunked.out, ref).relL2).toBeLessThan(tol);
    expect(Array.from(chunked.out.data)).toEqual(Array.from(whole.out.data));
  });
});
