/**
 * Held-out PyTorch exports (tests/exported/*, made by bench/exports/make_exports.py with torch
 * 2.11: dynamo exporter at opset 18 and the TorchScript exporter at opset 17). For each folder:
 * the reference interpreter reproduces PyTorch's fp32 output (relative L2 <= 1e-4), the default
 * pipeline fuses every attention (no Softmax left), block discovery finds the expected groups,
 * and simulated context parallelism (ulysses 2, ring 2; cfg 2 on the batch-2 exports) still
 * matches PyTorch's output.
 */
import fs from 'node:fs';
import path from 'node:path';
import { IrError, Module, Tensor, interpret, loadModel } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import { createPassContext, defaultPipeline, discoverBlocks, runPipeline, simulatedExecutor } from '@paradit/passes';
import { compareTensors, listTestDataSets, readTestDataSet } from '@paradit/runtime';

const ROOT = path.join(__dirname, 'exported');
const TOL = 1e-4;

interface Expect {
  /** Attention layers of the PyTorch model. */
  readonly attention: number;
  readonly groups: [string, number][];
  readonly cfg2?: boolean;
}

// Families: see bench/exports/make_exports.py and tests/exported/README.md.
const FAMILIES: Record<string, Expect> = {
  pixart: { attention: 4, groups: [['single-stream+cross-attn', 2]] },
  hunyuan: {
    attention: 4,
    groups: [
      ['double-stream', 2],
      ['single-stream', 2],
    ],
  },
  mochi: { attention: 2, groups: [['double-stream', 2]] },
  ltx: { attention: 4, groups: [['single-stream+cross-attn', 2]] },
};

const folders = fs.existsSync(ROOT)
  ? fs
      .readdirSync(ROOT)
      .filter((d) => fs.existsSync(path.join(ROOT, d, 'model.onnx')))
      .sort()
  : [];

function expectationOf(folder: string): Expect {
  const family = folder.split('_')[0]!;
  const e = FAMILIES[family];
  if (!e) throw new Error(`tests/exported/${folder}: unknown family '${family}'; add it to FAMILIES`);
  return { ...e, cfg2: folder.includes('_cfg2_') };
}

const loaded = new Map<string, { raw: Module; inputs: Tensor[]; ref: Tensor }>();
function load(folder: string): { raw: Module; inputs: Tensor[]; ref: Tensor } {
  let l = loaded.get(folder);
  if (!l) {
    const dir = path.join(ROOT, folder);
    const set = readTestDataSet(listTestDataSets(dir)[0]!);
    l = { raw: loadModel(dir), inputs: set.inputs, ref: set.outputs[0]! };
    loaded.set(folder, l);
  }
  return l;
}

/**
 * Meshes a model cannot take, by "family mesh": the refusal must name the attention node. The
 * 2-head families refuse ulysses 4; LTX (4 query heads, 2 kv heads) takes it. Every export runs
 * at ulysses 2 and ring 2 (and cfg 2 with a batch of 2).
 */
const HEADS_2_OF_4 = /attention '[^']+': 2 heads are not divisible by ulysses degree 4; use --ring or a degree that divides 2 \(1, 2\)/;
const REFUSED: Record<string, RegExp> = {
  'pixart ulysses 4': HEADS_2_OF_4,
  'hunyuan ulysses 4': HEADS_2_OF_4,
  'mochi ulysses 4': HEADS_2_OF_4,
};

function checkOrRefusal(folder: string, meshName: string, run: () => Tensor[]): void {
  const { ref } = load(folder);
  const refusal = REFUSED[`${folder.split('_')[0]!} ${meshName}`];
  if (refusal) {
    expect(run).toThrow(IrError);
    expect(run).toThrow(refusal);
    return;
  }
  expect(compareTensors(run()[0]!, ref).relL2).toBeLessThan(TOL);
}


test('the exported folders are present', () => {
  expect(folders.length).toBeGreaterThanOrEqual(10);
});

describe.each(folders)('%s', (folder) => {
  const exp = expectationOf(folder);

  test('interpreter matches the PyTorch output', () => {
    const { raw, inputs, ref } = load(folder);
    const got = interpret(raw, inputs);
    expect(got[0]!.shape).toEqual(ref.shape);
    expect(compareTensors(got[0]!, ref).relL2).toBeLessThan(TOL);
  });

  test(`default pipeline: ${exp.attention} fused attentions, no Softmax, ${exp.groups.map(([k, n]) => `${n} x ${k}`).join(' + ')}`, () => {
    const { raw, inputs, ref } = load(folder);
    const m = runPipeline(raw, defaultPipeline(), createPassContext({ verify: true }));
    expect(m.graph.nodes.filter((n) => n.op === 'attention')).toHaveLength(exp.attention);
    expect(m.graph.nodes.filter((n) => n.op === 'Softmax')).toHaveLength(0);
    const r = discoverBlocks(m.graph);
    expect(r.blocks.length).toBeGreaterThan(0);
    expect(r.groups.map((g) => [g.kind, g.count])).toEqual(exp.groups);
    expect(compareTensors(interpret(m, inputs)[0]!, ref).relL2).toBeLessThan(TOL);
  });

  const meshes: [string, Mesh][] = [
    ['ulysses 2', { cfg: 1, ring: 1, ulysses: 2 }],
    ['ring 2', { cfg: 1, ring: 2, ulysses: 1 }],
    ['ulysses 4', { cfg: 1, ring: 1, ulysses: 4 }],
    ...(exp.cfg2 ? ([['cfg 2', { cfg: 2, ring: 1, ulysses: 1 }]] as [string, Mesh][]) : []),
  ];
  test.each(meshes)('simulated %s matches the PyTorch output (or is refused naming the node)', (name, mesh) => {
    const { raw, inputs } = load(folder);
    checkOrRefusal(folder, name, () => simulatedExecutor(mesh)(raw, inputs));
  });

  test('the graph output keeps its ONNX name through the default pipeline', () => {
    const { raw } = load(folder);
    const m = runPipeline(raw, defaultPipeline(), createPassContext());
    expect(m.graph.outputs.map((v) => v.name)).toEqual(raw.graph.outputs.map((v) => v.name));
  });
});
