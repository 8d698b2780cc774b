/**
 * Held-out DiT families (shapes not among ../shared/fixtures), built in code: attention count,
 * no Softmax left, blocks, and numerics of the default pipeline (relative L2 <= 1e-5 against the
 * unfused model on the reference interpreter). Masks are a bool text padding mask turned into an
 * additive bias with Where, as diffusers' attention processors do.
 */
import { Module, Tensor, interpret } from '@paradit/ir';
import { createPassContext, defaultPipeline, discoverBlocks, runPipeline } from '@paradit/passes';
import { ZOO_BASE, ZooConfig, buildZooDit, zooDitInputs } from './models/dit-zoo';
import { relL2 } from './models/pipeline-helpers';

const TOL = 1e-5;


const count = (m: Module, op: string): number => m.graph.nodes.filter((n) => n.op === op).length;

interface Case {
  readonly name: string;
  readonly cfg: ZooConfig;
  readonly attention: number;
  readonly groups: [string, number][];
}

const CASES: Case[] = [
  {
    name: 'PixArt-like: self + masked cross-attention blocks',
    cfg: { ...ZOO_BASE, blocks: ['cross', 'cross', 'cross', 'cross'], mask: true },
    attention: 8,
    groups: [['single-stream+cross-attn', 4]],
  },
  {
    name: 'PixArt-like, heads folded into the batch (bmm) and a (1 - mask) * -10000 bias',
    cfg: { ...ZOO_BASE, blocks: ['cross', 'cross', 'cross'], mask: true, attention: 'batched', maskStyle: 'float' },
    attention: 6,
    groups: [['single-stream+cross-attn', 3]],
  },
  {
    name: 'HunyuanVideo-like with q and k each scaled by sqrt(scale) (SDPA decomposition)',
    cfg: { ...ZOO_BASE, blocks: ['joint', 'joint', 'single', 'single'], mask: true, attention: 'qk-sqrt', maskStyle: 'float' },
    attention: 4,
    groups: [
      ['double-stream', 2],
      ['single-stream', 2],
    ],
  },
  {
    name: 'SD3-like with the scores divided by sqrt(head dim)',
    cfg: { ...ZOO_BASE, blocks: ['joint-dual', 'joint', 'joint-last'], attention: 'div' },
    attention: 4,
    groups: [
      ['double-stream+self-attn', 1],
      ['double-stream', 1],
      ['double-stream-no-context-update', 1],
    ],
  },
  {
    name: 'HunyuanVideo-like: masked joint attention, double then single stream',
    cfg: { ...ZOO_BASE, blocks: ['joint', 'joint', 'joint', 'single', 'single', 'single'], mask: true },
    attention: 6,
    groups: [
      ['double-stream', 3],
      ['single-stream', 3],
    ],
  },
  {
    name: 'HunyuanVideo-like with a masked text token refiner (pre-blocks) before the main blocks',
    cfg: { ...ZOO_BASE, refiner: 2, blocks: ['joint', 'joint', 'single', 'single', 'single'], mask: true },
    attention: 7,
    groups: [
      ['double-stream', 2],
      ['single-stream', 3],
    ],
  },
  {
    name: 'SD3-like block order with a text mask',
    cfg: { ...ZOO_BASE, blocks: ['joint-dual', 'joint', 'joint', 'joint-last'], mask: true },
    attention: 5,
    groups: [
      ['double-stream+self-attn', 1],
      ['double-stream', 2],
      ['double-stream-no-context-update', 1],
    ],
  },
  {
    name: 'MMDiT stack ending in a plain joint block (dead text output pruned)',
    cfg: { ...ZOO_BASE, blocks: ['joint', 'joint', 'joint', 'joint'], batch: 1, seed: 8 },
    attention: 4,
    groups: [['double-stream', 4]],
  },
  {
    // Only the Softmax cross-attentions count as attention; the linear one still starts each block.
    name: 'Sana-like: ReLU linear self-attention (no Softmax) and masked cross-attention',
    cfg: { ...ZOO_BASE, blocks: ['linear-cross', 'linear-cross', 'linear-cross'], mask: true },
    attention: 3,
    groups: [['single-stream', 3]],
  },
  {
    name: 'mixed: joint blocks, then cross-attention blocks on the image stream',
    cfg: { ...ZOO_BASE, blocks: ['joint', 'joint', 'joint-last', 'cross', 'cross'], mask: true },
    attention: 7,
    groups: [
      ['double-stream', 2],
      ['double-stream-no-context-update', 1],
      ['single-stream+cross-attn', 2],
    ],
  },
];

describe('held-out DiT families', () => {
  for (const c of CASES) {
    test(`${c.name}: ${c.attention} attentions, ${c.groups.map(([k, n]) => `${n} x ${k}`).join(' + ')}`, () => {
      const raw = buildZooDit(c.cfg);
      expect(count(raw, 'Softmax')).toBe(c.attention);
      const m = runPipeline(raw, defaultPipeline(), createPassContext({ verify: true }));
      expect(count(m, 'attention')).toBe(c.attention);
      expect(count(m, 'Softmax')).toBe(0);
      const masked = m.graph.nodes.filter((n) => n.op === 'attention' && n.inputs[3]);
      // Every attention that reads text keys carries the mask; self-attention on the image does not.
      if (c.cfg.mask) expect(masked.length).toBeGreaterThan(0);
      else expect(masked).toHaveLength(0);
      const r = discoverBlocks(m.graph);
      expect(r.groups.map((g) => [g.kind, g.count])).toEqual(c.groups);
      // Every attention sits in a block or a pre-block (a refiner).
      expect([...r.preBlocks, ...r.blocks].reduce((a, b) => a + b.attentionCount, 0)).toBe(c.attention);
      expect(r.preBlocks).toHaveLength(c.cfg.refiner ?? 0);
      const ins = zooDitInputs(c.cfg, 4);
      const want = interpret(raw, ins)[0]!;
      const got = interpret(m, ins)[0]!;
      expect(relL2(got, want)).toBeLessThanOrEqual(TOL);
    });
  }

  test('the mask matters (the masked model differs from the unmasked one on padded rows)', () => {
    const cfg: ZooConfig = { ...ZOO_BASE, blocks: ['cross', 'cross'], mask: true };
    const m = runPipeline(buildZooDit(cfg), defaultPipeline(), createPassContext());
    const ins = zooDitInputs(cfg, 4);
    const all = ins.slice(0, 3).concat([Tensor.from('bool', [2, cfg.textTokens], new Array<number>(2 * cfg.textTokens).fill(1))]);
    expect(relL2(interpret(m, ins)[0]!, interpret(m, all)[0]!)).toBeGreaterThan(1e-3);
  });
});
