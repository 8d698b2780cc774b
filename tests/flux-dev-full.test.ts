/**
 * The full FLUX.1-dev transformer graph (bench/models/flux-dev-full: FluxTransformer2DModel at the
 * FLUX.1-dev config, 19 double + 38 single blocks, 24 heads x 128, 1024x1024; traced on the meta
 * device by bench/exports/make_seed_exports.py --full-flux-graph --full-flux-device meta, no
 * weights). It imports with seeded random weights (none are read: inspecting needs shapes only),
 * the default pipeline fuses all 57 attentions and block discovery finds 19 + 38 blocks.
 */
import path from 'node:path';
import { loadModel } from '@paradit/ir';
import { createPassContext, defaultPipeline, discoverBlocks, runPipeline } from '@paradit/passes';

const DIR = path.join(__dirname, '..', 'bench', 'models', 'flux-dev-full');

test('full FLUX.1-dev: 11.9 B parameters, 57 fused attentions, 19 double-stream + 38 single-stream blocks', () => {
  const t0 = performance.now();
  const raw = loadModel(DIR, { randomWeights: { seed: 0 } });
  const params = raw.graph.nodes.length > 0 ? countParams(raw) : 0;
  expect(params).toBeGreaterThan(11.8e9);
  const m = runPipeline(raw, defaultPipeline(), createPassContext());
  expect(m.graph.nodes.filter((n) => n.op === 'attention')).toHaveLength(57);
  expect(m.graph.nodes.filter((n) => n.op === 'Softmax')).toHaveLength(0);
  const r = discoverBlocks(m.graph);
  expect(r.groups.map((g) => [g.kind, g.count])).toEqual([
    ['double-stream', 19],
    ['single-stream', 38],
  ]);
  process.stdout.write(`full FLUX.1-dev: import + default pipeline + block discovery in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
});

function countParams(m: ReturnType<typeof loadModel>): number {
  const seen = new Set<unknown>();
  let n = 0;
  for (const node of m.graph.nodes) {
    for (const v of node.inputs) {
      if (!v || !v.constant || seen.has(v)) continue;
      seen.add(v);
      n += v.shape.reduce<number>((a, d) => a * (typeof d === 'number' ? d : 0), 1);
    }
  }
  return n;
}
