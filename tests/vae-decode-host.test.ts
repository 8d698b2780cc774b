/**
 * The conv and group-norm kernels of both tiny VAE fixtures' plans, run on the host as emitted
 * (tests/vae-decode-host.ts: a pthread per CUDA thread, the warp MMA from the PTX fragment
 * layout), against the IR reference of the nodes each kernel covers (the interpreter) on seeded
 * inputs: bf16 plans within rel. L2 1e-2 (bit-equal in practice today: fp32 accumulation against
 * the interpreter's, then one bf16 rounding; the GroupNorm rounds where the unfused nodes do), fp32
 * group norms within 1e-5; plus synthetic convs with partial M/N/K tiles, stride, dilation,
 * asymmetric pads, a rows-only upsample, SiLU and f16. A GPU run is still needed to check the
 * hardware's MMA fragment layout.
 */
import path from 'node:path';
import { Graph, GraphBuilder, Module, Tensor, interpret, loadModel, mulberry32, tensorType } from '@paradit/ir';
import type { Value } from '@paradit/ir';
import { refOf } from '@paradit/codegen-cuda';
import { compileModule } from '@paradit/compiler';
import type { EmittedKernel } from '../packages/codegen-cuda/src/kernel-types';
import { compareTensors } from '@paradit/runtime';
import { findConvMatches } from '../packages/codegen-cuda/src/kernels/conv-fragment';
import { CUDA_INCLUDE, GXX, runKernelsOnHost } from './vae-decode-host';
import { skipReason } from './skip-reason';

const VAE = path.join(__dirname, 'vae');
const OK = GXX !== undefined && CUDA_INCLUDE !== undefined;
if (!OK) skipReason(__filename, 'skipped: needs g++ and /usr/local/cuda/include/cuda_bf16.h');
const maybe = OK ? it : it.skip;

function kernelsOf(folder: string, dtype: 'bf16' | 'f32'): { m: Module; kernels: EmittedKernel[] } {
  const m = loadModel(path.join(VAE, folder));
  const c = compileModule(m, { dtype });
  const kernels = c.lowered.program.flatMap((i) => (i.op === 'kernel' && /_(conv|gnorm)\d+$/.test(i.kernel.entry) ? [i.kernel] : []));
  return { m: c.reference, kernels };
}

/** One kernel per distinct text (the same code with other weights adds only run time on 2 cores). */
function distinct(kernels: readonly EmittedKernel[]): EmittedKernel[] {
  const seen = new Set<string>();
  return kernels.filter((k) => {
    const key = k.source.split(k.entry).join('ENTRY');
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Seeded data for the non-constant values a kernel reads (a mean of 0.3 exercises the two passes). */
function dataSource(seed: number): (v: Value) => Tensor {
  const made = new Map<Value, Tensor>();
  const rand = mulberry32(seed);
  return (v) => {
    if (v.constant) return v.constant.tensor();
    let t = made.get(v);
    if (!t) {
      const n = (v.shape as number[]).reduce((a, b) => a * b, 1);
      t = Tensor.from(v.dtype, v.shape as number[], Array.from({ length: n }, () => 0.3 + (rand() * 2 - 1)));
      made.set(v, t);
    }
    return t;
  };
}

function reference(k: EmittedKernel, data: (v: Value) => Tensor, opsets: Module['opsets']): Tensor[] {
  const r = refOf(k.covers, k.writes);
  const g = new Graph(r.inputs, r.nodes, r.outputs, 'ref');
  return interpret(new Module(g, opsets, { irVersion: 10, producerName: 'paradit-tests', producerVersion: '0.1.0' }), r.inputs.map(data));
}

describe.each(['flux_vae_tiny_dynamo', 'flux_vae_tiny_ts'])('%s: kernels run on the host', (folder) => {
  maybe('bf16 plan: every conv kernel (one with the folded upsample) and group-norm kernel matches its reference', () => {
    const { m, kernels } = kernelsOf(folder, 'bf16');
    expect(kernels.filter((k) => k.entry.includes('_conv'))).toHaveLength(15);
    expect(kernels.filter((k) => k.entry.includes('_gnorm'))).toHaveLength(14);
    const data = dataSource(151);
    const run = distinct(kernels);
    expect(run.some((k) => k.covers.some((n) => n.op === 'Resize'))).toBe(true);
    const got = runKernelsOnHost(run, data);
    run.forEach((k, i) => {
      const ref = reference(k, data, m.opsets)[0]!;
      const c = compareTensors(got[i]![0]!, ref);
      if (!(c.relL2 < 1e-2)) throw new Error(`${k.entry} (${k.covers.map((n) => n.label).join(', ')}): rel L2 ${c.relL2}, max |err| ${c.maxAbs}`);
    });
  }, 300_000);

  maybe('fp32 plan: the group-norm kernels match within 1e-5', () => {
    const { m, kernels } = kernelsOf(folder, 'f32');
    const data = dataSource(152);
    const run = distinct(kernels);
    const got = runKernelsOnHost(run, data);
    run.forEach((k, i) => {
      const c = compareTensors(got[i]![0]!, reference(k, data, m.opsets)[0]!);
      expect(c.relL2).toBeLessThan(1e-5);
    });
  }, 300_000);
});

describe('synthetic convs on the host: partial tiles, stride, asymmetric pads, SiLU epilogue, f16', () => {
  const str = (value: string) => ({ kind: 'string' as const, value });
  const ints = (value: number[]) => ({ kind: 'ints' as const, value });
  const cases = [
    // 5x7 output pixels (M = 70: a partial M tile), O = 5, K = 3*3*2 = 18 (a partial K step).
    { name: 'f16, stride 2, dilation (1, 2), pads (1, 0, 2, 1), SiLU', dtype: 'f16' as const, x: [2, 3, 9, 13], w: [5, 3, 3, 2], strides: [2, 2], dil: [1, 2], pads: [1, 0, 2, 1], up: undefined },
    // rows-only nearest upsample (half_pixel), O = 70 (two N tiles), C = 20 (K = 180).
    { name: 'bf16, nearest rows x2 (half_pixel) -> 3x3 pad 1, SiLU', dtype: 'bf16' as const, x: [1, 20, 5, 6], w: [70, 20, 3, 3], strides: [1, 1], dil: [1, 1], pads: [1, 1, 1, 1], up: [2, 1] },
    // K = 8*3*3 = 72, a multiple of 8: the weights stream in by cp.async (two stages), with a
    // partial K step (72 = 2*32 + 8) and O = 70 (the second N tile's rows 70..127 zero-filled).
    { name: 'bf16, cp.async weight stages, partial K step and N tile', dtype: 'bf16' as const, x: [1, 8, 6, 7], w: [70, 8, 3, 3], strides: [1, 1], dil: [1, 1], pads: [1, 1, 1, 1], up: undefined },
  ];
  maybe.each(cases.map((c) => [c.name, c] as const))('%s', (_n, c) => {
    const g = new GraphBuilder(18);
    let x: Value = g.input('x', tensorType(c.dtype, c.x));
    if (c.up) {
      const scales = g.constant(Tensor.from('f32', [4], [1, 1, ...c.up]));
      x = g.add('Resize', [x, null, scales], { mode: str('nearest'), coordinate_transformation_mode: str('half_pixel') }, { name: 'up' })[0]!;
    }
    const rand = mulberry32(7);
    const rnd = (shape: number[]): Tensor => Tensor.from(c.dtype, shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rand() * 2 - 1));
    const conv = g.add('Conv', [x, g.constant(rnd(c.w)), g.constant(rnd([c.w[0]!]))], { strides: ints(c.strides), dilations: ints(c.dil), pads: ints(c.pads) }, { name: 'conv' })[0]!;
    const y = g.add('silu', [conv], {}, { name: 'act' })[0]!;
    const ms = findConvMatches(g.build([y]));
    expect(ms.map((m) => m.nodes.map((n) => n.op).join())).toEqual([c.up ? 'Resize,Conv,silu' : 'Conv,silu']);
    const k = ms[0]!.kernel('synthetic_conv');
    const data = dataSource(9);
    const got = runKernelsOnHost([k], data)[0]![0]!;
    const c0 = compareTensors(got, reference(k, data, { '': 18 })[0]!);
    expect(c0.relL2).toBeLessThan(1e-2);
  }, 120_000);
});
