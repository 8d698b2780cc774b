/**
 * Exports of the real diffusers classes (tests/seed/*, made by bench/exports/make_seed_exports.py:
 * HunyuanVideo, Mochi, CogVideoX and FLUX transformers at tiny configs, TorchScript opset 17 and
 * dynamo opsets 18 and 23; see tests/seed/README.md). For each folder and each of its test data
 * sets (the masked families have a second set with other valid prompt lengths):
 * - the reference interpreter reproduces PyTorch's fp32 output (relative L2 <= 1e-4);
 * - the default pipeline leaves no NonZero (Mochi's token selection became a masked attention),
 *   no Softmax (every attention fused), and still matches;
 * - simulated context parallelism at ulysses 2, ring 2 and ulysses 2 x ring 2 (and cfg 2 on the
 *   batch-2 exports) matches on every data set.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Module, Tensor, interpret, loadModel } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import { createPassContext, defaultPipeline, runPipeline, simulatedExecutor } from '@paradit/passes';
import { compareTensors, listTestDataSets, readTestDataSet } from '@paradit/runtime';

const ROOT = path.join(__dirname, 'seed');
const TOL = 1e-4;

const folders = fs.existsSync(ROOT)
  ? fs
      .readdirSync(ROOT)
      .filter((d) => fs.existsSync(path.join(ROOT, d, 'model.onnx')))
      .sort()
  : [];

interface Loaded {
  readonly raw: Module;
  readonly sets: { readonly inputs: Tensor[]; readonly ref: Tensor }[];
}
const cache = new Map<string, Loaded>();
function load(folder: string): Loaded {
  let l = cache.get(folder);
  if (!l) {
    const dir = path.join(ROOT, folder);
    const sets = listTestDataSets(dir).map((d) => {
      const s = readTestDataSet(d);
      return { inputs: s.inputs, ref: s.outputs[0]! };
    });
    l = { raw: loadModel(dir), sets };
    cache.set(folder, l);
  }
  return l;
}

const batchOf = (folder: string): number => load(folder).raw.graph.inputs[0]!.shape[0] as number;

test('the seed exports are present (the four families that export, each with three exporters where they succeed)', () => {
  expect(folders.length).toBeGreaterThanOrEqual(17);
  for (const family of ['hunyuan', 'mochi', 'cogvideox', 'flux']) expect(folders.some((f) => f.startsWith(family))).toBe(true);
});

describe.each(folders)('%s', (folder) => {
  test('interpreter matches the PyTorch output on every data set', () => {
    const { raw, sets } = load(folder);
    for (const s of sets) expect(compareTensors(interpret(raw, s.inputs)[0]!, s.ref).relL2).toBeLessThan(TOL);
  });

  test('default pipeline: no NonZero, no Softmax left, output unchanged', () => {
    const { raw, sets } = load(folder);
    const attentions = raw.graph.nodes.filter((n) => n.op === 'Softmax' || n.op === 'Attention').length;
    const m = runPipeline(raw, defaultPipeline(), createPassContext({ verify: true }));
    expect(m.graph.nodes.filter((n) => n.op === 'NonZero')).toHaveLength(0);
    expect(m.graph.nodes.filter((n) => n.op === 'Softmax')).toHaveLength(0);
    expect(m.graph.nodes.filter((n) => n.op === 'attention').length).toBe(attentions);
    for (const s of sets) expect(compareTensors(interpret(m, s.inputs)[0]!, s.ref).relL2).toBeLessThan(TOL);
  });

  const meshes: [string, Mesh][] = [
    ['ulysses 2', { cfg: 1, ring: 1, ulysses: 2 }],
    ['ring 2', { cfg: 1, ring: 2, ulysses: 1 }],
    ['ulysses 2 x ring 2', { cfg: 1, ring: 2, ulysses: 2 }],
    ['cfg 2', { cfg: 2, ring: 1, ulysses: 1 }],
  ];
  test.each(meshes)('simulated %s matches PyTorch on every data set', (name, mesh) => {
    if (mesh.cfg > 1 && batchOf(folder) < 2) return; // CFG parallelism needs the [uncond; cond] batch
    const { raw, sets } = load(folder);
    const run = simulatedExecutor(mesh);
    for (const s of sets) expect(compareTensors(run(raw, s.inputs)[0]!, s.ref).relL2).toBeLessThan(TOL);
  });
});
