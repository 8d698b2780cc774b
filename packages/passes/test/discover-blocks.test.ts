/** Transformer-block discovery on models the suite builds itself (no ../shared needed). */
import { discoverBlocks } from '../src/blocks/discover';
import { TINY_DIT, buildTinyDit } from '../../../tests/models/tiny-dit';

describe('discoverBlocks', () => {
  test('finds the single-stream blocks of a tiny DiT, with their streams and regions', () => {
    const m = buildTinyDit({ ...TINY_DIT, blocks: 3 });
    const r = discoverBlocks(m.graph);
    expect(r.groups.map((g) => [g.kind, g.count])).toEqual([['single-stream', 3]]);
    expect(r.blocks).toHaveLength(3);
    for (const b of r.blocks) {
      expect(b.attentionCount).toBe(1);
      expect(b.streamInputs).toHaveLength(1);
      // The stream keeps its [B, L, D] shape through every block.
      expect(b.streamInputs[0]!.shape).toEqual([1, TINY_DIT.textTokens + TINY_DIT.imageTokens, TINY_DIT.heads * TINY_DIT.headDim]);
    }
    // Each block's output is the next block's stream input.
    expect(r.blocks[1]!.streamInputs[0]).toBe(r.blocks[0]!.streamOutputs[0]);
    expect(r.blocks[2]!.streamInputs[0]).toBe(r.blocks[1]!.streamOutputs[0]);
    // The three regions partition the nodes outside block 0.
    const total = r.prologue.length + r.blocks[0]!.nodes.length + r.afterFirst.length + r.head.length;
    expect(total).toBe(m.graph.nodes.length);
    expect(r.head.some((n) => n.name === 'node_Slice_out')).toBe(true);
  });

  test('blocks with different structure form different groups', () => {
    const m = buildTinyDit({ ...TINY_DIT, blocks: 2, mask: true });
    const r = discoverBlocks(m.graph);
    expect(r.groups.map((g) => g.count)).toEqual([2]);
    // The mask is a global input of every block, not a stream.
    for (const b of r.blocks) expect(b.globalInputs.some((v) => v.dtype === 'f32' && v.shape.length === 4)).toBe(true);
  });

  test('a graph without residual blocks reports none (must not fire)', () => {
    const m = buildTinyDit({ ...TINY_DIT, blocks: 0 });
    const r = discoverBlocks(m.graph);
    expect(r.blocks).toHaveLength(0);
    expect(r.groups).toHaveLength(0);
  });
});
