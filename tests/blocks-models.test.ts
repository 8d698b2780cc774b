/**
 * Transformer-block discovery on DiTs built in code (no ../shared needed): a single-stream stack,
 * FLUX-like double-stream + single-stream, SD3-like first and last blocks that differ from the
 * middle ones, masked models, and a joint stack whose last block lost its dead text output.
 * Each case checks groups, boundaries (first/last node of each block and the streams between
 * blocks), the streams entering block 0, and the prologue / afterFirst / head regions.
 */
import { Graph, Module, Node, Value } from '@paradit/ir';
import { BlockReport, createPassContext, defaultPipeline, discoverBlocks, runPipeline } from '@paradit/passes';
import { TINY_DIT, buildTinyDit } from './models/tiny-dit';
import { ZOO_BASE, ZooConfig, buildZooDit } from './models/dit-zoo';

function compile(m: Module): Module {
  return runPipeline(m, defaultPipeline(), createPassContext({ verify: true }));
}

const kinds = (r: BlockReport): [string, number][] => r.groups.map((g) => [g.kind, g.count]);

/** Structural facts every report must satisfy. */
function checkRegions(g: Graph, r: BlockReport): void {
  const pos = new Map<Node, number>(g.nodes.map((n, i) => [n, i]));
  // Regions partition the graph: prologue + block 0 + afterFirst + head.
  const all = [...r.prologue, ...r.blocks[0]!.nodes, ...r.afterFirst, ...r.head];
  expect(new Set(all).size).toBe(g.nodes.length);
  // Every block after the first lies inside afterFirst; no block node is in the prologue or head.
  const after = new Set(r.afterFirst);
  for (const b of r.blocks.slice(1)) for (const n of b.nodes) expect(after.has(n)).toBe(true);
  const firstStart = pos.get(r.blocks[0]!.nodes[0]!)!;
  for (const n of r.prologue) expect(pos.get(n)!).toBeLessThan(firstStart);
  const last = r.blocks[r.blocks.length - 1]!;
  const lastEnd = pos.get(last.nodes[last.nodes.length - 1]!)!;
  for (const n of r.head) expect(pos.get(n)!).toBeGreaterThan(lastEnd);
  // Graph outputs are computed by the head from the last block's stream output.
  const headOut = new Set(r.head.flatMap((n) => [...n.outputs]));
  for (const o of g.outputs) expect(headOut.has(o)).toBe(true);
  expect(r.head.some((n) => n.inputs.some((v) => v && last.streamOutputs.includes(v)))).toBe(true);
  // Each block ends with a residual (an Add or gated_residual writing a stream output).
  for (const b of r.blocks) {
    const endNode = b.nodes[b.nodes.length - 1]!;
    expect(['Add', 'gated_residual']).toContain(endNode.op);
    expect(b.streamOutputs).toContain(endNode.outputs[0]);
  }
}

/** True when `v` is computed from `from` inside the graph. */
function dependsOn(g: Graph, v: Value, from: Value): boolean {
  const producer = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const seen = new Set<Value>();
  const stack = [v];
  while (stack.length) {
    const x = stack.pop()!;
    if (x === from) return true;
    if (seen.has(x)) continue;
    seen.add(x);
    for (const i of producer.get(x)?.inputs ?? []) if (i) stack.push(i);
  }
  return false;
}

describe('block discovery on models built in code', () => {
  test('single-stream stack (tiny DiT): 4 identical blocks chained on one stream', () => {
    const m = compile(buildTinyDit({ ...TINY_DIT, blocks: 4 }));
    const r = discoverBlocks(m.graph);
    expect(kinds(r)).toEqual([['single-stream', 4]]);
    checkRegions(m.graph, r);
    expect(r.streams.map((s) => s.role)).toEqual(['main']);
    // The stream entering block 0 is the concat of the text and image embeddings.
    expect(m.graph.nodes.find((n) => n.outputs.includes(r.streams[0]!.value))!.op).toBe('Concat');
    for (let i = 1; i < 4; i++) expect(r.blocks[i]!.streamInputs).toEqual([r.blocks[i - 1]!.streamOutputs[0]]);
    // afterFirst is exactly blocks 1..3 plus the side nodes between them (none here).
    expect(r.afterFirst).toHaveLength(r.blocks.slice(1).reduce((a, b) => a + b.nodes.length, 0));
    // The head: final modulation and projection, and the slice to image tokens.
    expect(r.head.map((n) => n.op)).toEqual(expect.arrayContaining(['layer_norm', 'modulate', 'linear', 'Slice']));
    // Block 0 holds its own modulation linear (a side input only it uses).
    expect(r.blocks[0]!.nodes.filter((n) => n.op === 'linear').length).toBeGreaterThanOrEqual(7);
  });

  test('FLUX-like: 2 double-stream + 3 single-stream, image is the main stream', () => {
    const cfg: ZooConfig = { ...ZOO_BASE, blocks: ['joint', 'joint', 'single', 'single', 'single'] };
    const raw = buildZooDit(cfg);
    const m = compile(raw);
    const r = discoverBlocks(m.graph);
    expect(kinds(r)).toEqual([
      ['double-stream', 2],
      ['single-stream', 3],
    ]);
    checkRegions(m.graph, r);
    expect(r.blocks.map((b) => b.streamInputs.length)).toEqual([2, 2, 1, 1, 1]);
    expect(r.streams.map((s) => s.role).sort()).toEqual(['context', 'main']);
    const main = r.streams.find((s) => s.role === 'main')!.value;
    const context = r.streams.find((s) => s.role === 'context')!.value;
    expect(main.shape).toEqual([2, 12, 16]);
    expect(context.shape).toEqual([2, 5, 16]);
    expect(dependsOn(m.graph, main, m.graph.inputs[0]!)).toBe(true);
    expect(dependsOn(m.graph, context, m.graph.inputs[1]!)).toBe(true);
    // Block 1 hands both streams to block 2 through a concat that belongs to no block.
    const s2 = r.blocks[2]!.streamInputs[0]!;
    expect(s2.shape).toEqual([2, 17, 16]);
    expect(r.blocks[1]!.streamOutputs.every((o) => dependsOn(m.graph, s2, o))).toBe(true);
  });

  test('SD3-like: the first block (second attention) and the last (text not updated) are their own kinds', () => {
    const m = compile(buildZooDit({ ...ZOO_BASE, blocks: ['joint-dual', 'joint', 'joint', 'joint-last'] }));
    const r = discoverBlocks(m.graph);
    expect(kinds(r)).toEqual([
      ['double-stream+self-attn', 1],
      ['double-stream', 2],
      ['double-stream-no-context-update', 1],
    ]);
    checkRegions(m.graph, r);
    expect(r.blocks.map((b) => b.attentionCount)).toEqual([2, 1, 1, 1]);
    expect(r.blocks.map((b) => b.streamInputs.length)).toEqual([2, 2, 2, 2]);
    expect(r.blocks.map((b) => b.streamOutputs.length)).toEqual([2, 2, 2, 1]);
    // afterFirst = blocks 1..3 (FBC skips them when block 0's residual barely changes).
    const after = new Set(r.afterFirst);
    expect(r.blocks.slice(1).every((b) => b.nodes.every((n) => after.has(n)))).toBe(true);
    expect(r.afterFirst.some((n) => r.blocks[0]!.nodes.includes(n))).toBe(false);
  });

  test('a joint stack whose last block lost its dead text output stays one group (pruned copy)', () => {
    const m = compile(buildZooDit({ ...ZOO_BASE, blocks: ['joint', 'joint', 'joint'] }));
    const r = discoverBlocks(m.graph);
    expect(kinds(r)).toEqual([['double-stream', 3]]);
    expect(r.blocks.map((b) => b.pruned)).toEqual([false, false, true]);
    expect(r.blocks[2]!.signature).not.toBe(r.blocks[1]!.signature);
    checkRegions(m.graph, r);
  });

  test('masked models: the mask is a side input of every block, never a stream', () => {
    const tiny = compile(buildTinyDit({ ...TINY_DIT, blocks: 3, mask: true }));
    const rt = discoverBlocks(tiny.graph);
    expect(kinds(rt)).toEqual([['single-stream', 3]]);
    checkRegions(tiny.graph, rt);
    const pix = compile(buildZooDit({ ...ZOO_BASE, blocks: ['cross', 'cross', 'cross'], mask: true }));
    const rp = discoverBlocks(pix.graph);
    expect(kinds(rp)).toEqual([['single-stream+cross-attn', 3]]);
    checkRegions(pix.graph, rp);
    const maskInput = pix.graph.inputs[3]!;
    for (const b of rp.blocks) {
      expect(b.streamInputs).toHaveLength(1);
      expect(b.globalInputs.some((v) => dependsOn(pix.graph, v, maskInput))).toBe(true);
      expect(b.streamInputs[0]!.shape).toEqual([2, 12, 16]);
    }
    expect(dependsOn(pix.graph, rp.blocks[0]!.streamInputs[0]!, maskInput)).toBe(false);
  });

  test('HunyuanVideo-like: text token-refiner blocks before the latent enters are pre-blocks in the prologue', () => {
    const m = compile(buildZooDit({ ...ZOO_BASE, refiner: 2, blocks: ['joint', 'joint', 'single', 'single'], mask: true }));
    const r = discoverBlocks(m.graph);
    expect(kinds(r)).toEqual([
      ['double-stream', 2],
      ['single-stream', 2],
    ]);
    expect(r.preGroups.map((g) => [g.kind, g.count])).toEqual([['single-stream', 2]]);
    checkRegions(m.graph, r);
    // The refiners' attentions sit in the prologue; the refined text is block 0's context stream.
    const prologue = new Set(r.prologue);
    expect(r.preBlocks.every((b) => b.nodes.every((n) => prologue.has(n)))).toBe(true);
    expect(r.prologue.filter((n) => n.op === 'attention')).toHaveLength(2);
    expect(r.streams.map((s) => [s.role, s.value.shape])).toEqual([
      ['main', [2, 12, 16]],
      ['context', [2, 5, 16]],
    ]);
    expect(r.preBlocks[1]!.streamOutputs).toContain(r.streams[1]!.value);
    // With cross-attention blocks the refined text is read, never updated: a side input, not a stream.
    const pix = compile(buildZooDit({ ...ZOO_BASE, refiner: 1, blocks: ['cross', 'cross'], mask: true }));
    const rp = discoverBlocks(pix.graph);
    expect(kinds(rp)).toEqual([['single-stream+cross-attn', 2]]);
    expect(rp.preGroups.map((g) => [g.kind, g.count])).toEqual([['single-stream', 1]]);
    expect(rp.blocks.map((b) => b.streamInputs.length)).toEqual([1, 1]);
  });

  test('unfused attention (a Softmax) still makes one block: its v projection is not work beside it', () => {
    // Regression: with the Softmax standing for the attention, the v projection (read by the
    // product after the Softmax) looked like an MLP beside the attention and closed the block
    // early, splitting every PixArt-like block in two.
    const pix = buildZooDit({ ...ZOO_BASE, blocks: ['cross', 'cross', 'cross'], mask: true });
    const r = discoverBlocks(pix.graph);
    expect(r.blocks.every((b) => b.nodes.filter((n) => n.op === 'Softmax').length === 2)).toBe(true);
    expect(kinds(r)).toEqual([['single-stream+cross-attn', 3]]);
    const flux = discoverBlocks(buildZooDit({ ...ZOO_BASE, blocks: ['joint', 'joint', 'single', 'single'] }).graph);
    expect(kinds(flux)).toEqual([
      ['double-stream', 2],
      ['single-stream', 2],
    ]);
  });

  test('a graph without residual blocks reports none (must not fire)', () => {
    const r = discoverBlocks(compile(buildTinyDit({ ...TINY_DIT, blocks: 0 })).graph);
    expect(r.blocks).toEqual([]);
    expect(r.groups).toEqual([]);
    expect(r.streams).toEqual([]);
  });
});
