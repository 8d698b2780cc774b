/**
 * The tiny FLUX-structured VAE decoders (tests/vae/*, diffusers AutoencoderKL exported by
 * bench/exports/make_vae_exports.py with the dynamo exporter at opset 18 and TorchScript at opset 17;
 * see tests/vae/README.md). For each folder: the imported graph has the decoder's structure (15
 * 3x3 convolutions, 14 GroupNorms as InstanceNormalization, one nearest 2x Resize, one mid-block
 * attention after the default pipeline), the reference interpreter reproduces PyTorch's fp32
 * `vae.decode(z).sample` (relative L2 <= 1e-4), and a compiled plan run on the CPU backend does too
 * (fp32 plan within 1e-5, bf16 plan within 5e-2: the `check --backend` tolerances). A latent
 * perturbed in one row is a mismatch (the comparison can fail). The rows-parallel plan's halo,
 * all-reduce and gather volumes per rank equal a hand count (docs/vae.md), and the rows-parallel
 * module on 2 and 4 simulated ranks matches PyTorch's decode (1e-4) and the unsharded interpreter
 * (1e-5: only GroupNorm's all-reduced statistics round differently).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Module, Tensor, interpret, loadModel, runSimulated } from '@paradit/ir';
import { createPassContext, defaultPipeline, runPipeline } from '@paradit/passes';
import { compareTensors, listTestDataSets, readTestDataSet } from '@paradit/runtime';
import { checkModelDirOnPlan } from '../packages/cli/src/commands/check-backend';
import { shardRows } from '../packages/passes/src/rows-parallel/apply';
import { planRowsParallel } from '../packages/passes/src/rows-parallel/halo-plan';

const ROOT = path.join(__dirname, 'vae');
const FOLDERS = ['flux_vae_tiny_dynamo', 'flux_vae_tiny_ts'];
const TOL = 1e-4;

const loaded = new Map<string, { raw: Module; z: Tensor; ref: Tensor }>();
function load(folder: string): { raw: Module; z: Tensor; ref: Tensor } {
  let l = loaded.get(folder);
  if (!l) {
    const dir = path.join(ROOT, folder);
    const set = readTestDataSet(listTestDataSets(dir)[0]!);
    l = { raw: loadModel(dir), z: set.inputs[0]!, ref: set.outputs[0]! };
    loaded.set(folder, l);
  }
  return l;
}

function count(m: Module, op: string): number {
  return m.graph.nodes.filter((n) => n.op === op).length;
}

test('both exports are present', () => {
  for (const f of FOLDERS) expect(fs.existsSync(path.join(ROOT, f, 'model.onnx'))).toBe(true);
});

describe.each(FOLDERS)('%s', (folder) => {
  test('imports with the decoder structure: z f32[1,16,8,8] -> sample f32[1,3,16,16]', () => {
    const { raw } = load(folder);
    expect(raw.graph.inputs.map((v) => v.type.shape)).toEqual([[1, 16, 8, 8]]);
    expect(raw.graph.outputs.map((v) => v.type.shape)).toEqual([[1, 3, 16, 16]]);
    // conv_in, 2 mid resnets x 2, 2 up blocks x 2 resnets x 2, one upsampler conv, conv_out.
    const convs = raw.graph.nodes.filter((n) => n.op === 'Conv');
    expect(convs).toHaveLength(15);
    for (const c of convs) {
      expect([c.attrs.kernel_shape?.value, c.attrs.pads?.value, c.attrs.strides?.value]).toEqual([[3, 3], [1, 1, 1, 1], [1, 1]]);
    }
    // 2 mid resnets x 2 + the attention's group_norm + 2 up blocks x 2 resnets x 2 + conv_norm_out.
    expect(count(raw, 'InstanceNormalization')).toBe(14);
    const resize = raw.graph.nodes.filter((n) => n.op === 'Resize');
    expect(resize).toHaveLength(1);
    expect(resize[0]!.attrs.mode?.value ?? 'nearest').toBe('nearest');
    expect(resize[0]!.outputs[0]!.type.shape).toEqual([1, 32, 16, 16]);
  });

  test('interpreter matches PyTorch\'s decode', () => {
    const { raw, z, ref } = load(folder);
    const got = interpret(raw, [z])[0]!;
    expect(got.shape).toEqual(ref.shape);
    expect(compareTensors(got, ref).relL2).toBeLessThan(TOL);
  });

  test('default pipeline: the mid-block attention fused (no Softmax), 13 SiLUs, still matches', () => {
    const { raw, z, ref } = load(folder);
    const m = runPipeline(raw, defaultPipeline(), createPassContext({ verify: true }));
    expect(count(m, 'attention')).toBe(1);
    expect(count(m, 'Softmax')).toBe(0);
    // After norm1 and norm2 of each of the 6 resnets (2 mid, 2 per up block), and after conv_norm_out.
    expect(count(m, 'silu')).toBe(13);
    expect(compareTensors(interpret(m, [z])[0]!, ref).relL2).toBeLessThan(TOL);
  });

  test('a latent changed in one row decodes differently (the comparison can fail)', () => {
    const { raw, z, ref } = load(folder);
    const data = Float32Array.from(z.data);
    for (let c = 0; c < 16; c++) for (let x = 0; x < 8; x++) data[c * 64 + 3 * 8 + x]! += 0.5;
    const got = interpret(raw, [Tensor.normalized('f32', z.shape, data)])[0]!;
    expect(compareTensors(got, ref).relL2).toBeGreaterThan(1e-2);
  });

  test.each([
    ['f32', 1e-5],
    ['bf16', 5e-2],
  ] as const)('a %s plan on the CPU backend matches PyTorch\'s decode (rel L2 < %s)', async (dtype, tol) => {
    const r = await checkModelDirOnPlan(path.join(ROOT, folder), { backend: 'cpu', dtype });
    expect(r.dtype).toBe(dtype);
    expect(r.checks).toHaveLength(1);
    expect(r.checks[0]!.relL2).toBeLessThan(tol);
    expect(r.ok).toBe(true);
  });
});

/**
 * Hand count, f32, one image. Every conv is 3x3 pad 1 stride 1: one halo row per neighbour of
 * B*Cin*width*4 bytes: conv_in 16*8*4 = 512; the 8 convs at 8x8 with 32 channels (4 mid, 4 in
 * up_blocks.0) 1024 each; the 6 at 16x16 (upsampler, 4 in up_blocks.1, conv_out) 2048 each. An edge
 * rank receives one side: 512 + 8*1024 + 6*2048 = 20992; an interior rank twice that. GroupNorm:
 * 14 norms x (sum, sum of squares) x 8 groups x 4 bytes = 896 per rank. Mid-block attention (1
 * head, 64 tokens, head dim 32): K and V of the other ranks' tokens, (W-1)/W * 64 * (32+32) * 4.
 */
describe.each(FOLDERS)('%s rows-parallel plan', (folder) => {
  test.each([
    [2, [20992, 20992], 8192],
    [4, [20992, 41984, 41984, 20992], 12288],
  ])('degree %i: halo, all-reduce and gather bytes per rank', (world, halo, gather) => {
    const m = runPipeline(load(folder).raw, defaultPipeline(), createPassContext());
    const p = planRowsParallel(m, world);
    expect(p.steps.filter((s) => s.kind === 'conv-halo')).toHaveLength(15);
    expect(p.steps.filter((s) => s.kind === 'norm-all-reduce')).toHaveLength(14);
    expect(p.haloBytesByRank).toEqual(halo);
    expect(p.allReduceBytesByRank).toEqual(new Array(world).fill(896));
    expect(p.gatherBytesByRank).toEqual(new Array(world).fill(gather));
  });

  test('degree 16 is refused: 8 latent rows do not split 16 ways', () => {
    const m = runPipeline(load(folder).raw, defaultPipeline(), createPassContext());
    expect(() => planRowsParallel(m, 16)).toThrow(/rows-parallel: Conv '[^']+': 8 rows are not divisible by rows-parallel degree 16; use a degree that divides 8/);
  });
});

describe.each(FOLDERS)('%s on simulated ranks, rows-parallel', (folder) => {
  test.each([2, 4])('degree %i matches PyTorch\'s decode and the unsharded interpreter', (world) => {
    const { raw, z, ref } = load(folder);
    const m = runPipeline(raw, defaultPipeline(), createPassContext());
    const sharded = shardRows(m, world);
    // 15 convs x (from above, from below); 14 GroupNorms x (mean, variance); K, V and the image.
    expect(sharded.graph.nodes.filter((n) => n.op === 'ppermute')).toHaveLength(30);
    expect(sharded.graph.nodes.filter((n) => n.op === 'all_reduce')).toHaveLength(28);
    expect(sharded.graph.nodes.filter((n) => n.op === 'all_gather')).toHaveLength(3);
    const got = runSimulated(sharded, { cfg: 1, ring: world, ulysses: 1 }, [z])[0]!;
    expect(got.shape).toEqual([1, 3, 16, 16]);
    expect(compareTensors(got, ref).relL2).toBeLessThan(TOL);
    expect(compareTensors(got, interpret(m, [z])[0]!).relL2).toBeLessThan(1e-5);
  });
});
