/**
 * Transformer-block discovery on every ../shared/fixtures model, after the default pipeline: the
 * groups (kind, count, in order along the stream), the streams entering each block, and the
 * regions. Guards against the stream-counting bug where a value derived from a stream inside a
 * block (CogVideoX's text norm in its last block, SD3's second attention) counted as a stream.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Module, Value, loadModel } from '@paradit/ir';
import { createPassContext, defaultPipeline, discoverBlocks, runPipeline } from '@paradit/passes';
import { FIXTURES, HAVE_FIXTURES, NO_FIXTURES_REASON } from './fixtures';
import { skipReason } from './skip-reason';

if (!HAVE_FIXTURES) skipReason(__filename, NO_FIXTURES_REASON);

interface Expected {
  readonly groups: [string, number][];
  /** Attention ops per block. */
  readonly attention: number[];
  /** Streams entering each block. */
  readonly streams: number[];
  /** Blocks that are their predecessor with dead stream outputs pruned by the exporter. */
  readonly pruned?: number[];
}

const FLUX: Expected = {
  groups: [
    ['double-stream', 2],
    ['single-stream', 4],
  ],
  attention: [1, 1, 1, 1, 1, 1],
  streams: [2, 2, 1, 1, 1, 1],
};
const SD3: Expected = {
  groups: [
    ['double-stream+self-attn', 1],
    ['double-stream', 1],
    ['double-stream-no-context-update', 1],
  ],
  attention: [2, 1, 1],
  streams: [2, 2, 2],
};
const EXPECTED: Record<string, Expected> = {
  'flux-dynamo18': FLUX,
  'flux-dynamo23': FLUX,
  'flux-bf16-dynamo18': FLUX,
  'flux-dev-2x4': FLUX,
  'sd3-ts17': SD3,
  'sd3-dynamo23': SD3,
  'wan-dynamo18': { groups: [['single-stream+cross-attn', 3]], attention: [2, 2, 2], streams: [1, 1, 1] },
  // Its last block's text output is unused, so the exporter dropped that block's text feed-forward residual.
  'cogvideox-dynamo18': { groups: [['double-stream', 2]], attention: [1, 1], streams: [2, 2], pruned: [1] },
};

function compiled(name: string): Module {
  const raw = loadModel(path.join(FIXTURES, name), { randomWeights: { seed: 0 } });
  return runPipeline(raw, defaultPipeline(), createPassContext());
}

describe('block discovery on ../shared/fixtures', () => {
  if (!HAVE_FIXTURES) {
    test.skip(NO_FIXTURES_REASON, () => undefined);
    return;
  }
  test('every fixture folder has an expectation', () => {
    const present = fs.readdirSync(FIXTURES).filter((d) => fs.existsSync(path.join(FIXTURES, d, 'model.onnx')));
    expect(present.filter((d) => !EXPECTED[d])).toEqual([]);
  });
  for (const [name, want] of Object.entries(EXPECTED)) {
    const have = fs.existsSync(path.join(FIXTURES, name, 'model.onnx'));
    (have ? test : test.skip)(`${name}: ${want.groups.map(([k, n]) => `${n} x ${k}`).join(', ')}`, () => {
      const m = compiled(name);
      const r = discoverBlocks(m.graph);
      expect(r.groups.map((g) => [g.kind, g.count])).toEqual(want.groups);
      expect(r.blocks.map((b) => b.attentionCount)).toEqual(want.attention);
      expect(r.blocks.map((b) => b.streamInputs.length)).toEqual(want.streams);
      expect(r.blocks.filter((b) => b.pruned).map((b) => b.index)).toEqual(want.pruned ?? []);
      // Every attention of the graph sits in a block.
      const attention = m.graph.nodes.filter((n) => n.op === 'attention').length;
      expect(r.blocks.reduce((a, b) => a + b.attentionCount, 0)).toBe(attention);
      // Consecutive blocks are chained: each stream input of block i+1 is computed from block i
      // (directly, or through the slices and concat between FLUX's blocks, which belong to none).
      const owner = new Map(r.blocks.flatMap((b) => b.nodes.map((n) => [n, b.index] as const)));
      const producer = new Map(m.graph.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
      const sourceBlocks = (v: Value, out = new Set<number>()): Set<number> => {
        const p = producer.get(v);
        if (!p) return out;
        const b = owner.get(p);
        if (b !== undefined) out.add(b);
        else for (const x of p.inputs) if (x && !x.constant) sourceBlocks(x, out);
        return out;
      };
      for (const b of r.blocks.slice(1)) {
        for (const s of b.streamInputs) expect([...sourceBlocks(s)]).toEqual([b.index - 1]);
      }
      // The regions partition the graph.
      const total = r.prologue.length + r.blocks[0]!.nodes.length + r.afterFirst.length + r.head.length;
      expect(total).toBe(m.graph.nodes.length);
      expect(r.streams.filter((s) => s.role === 'main')).toHaveLength(1);
      expect(r.head.length).toBeGreaterThan(0);
    });
  }
});
