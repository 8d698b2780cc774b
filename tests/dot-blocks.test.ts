/**
 * `inspect --dot FILE`: the Graphviz drawing of the block-level structure. The DOT text is parsed
 * here (no graphviz needed) for its nodes, clusters and edges.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { saveModel } from '@paradit/ir';
import type { Module } from '@paradit/ir';
import { createPassContext, defaultPipeline, discoverBlocks, renderBlocksDot, runPipeline } from '@paradit/passes';
import { ZOO_BASE, buildZooDit } from './models/dit-zoo';
import { REPO_ROOT } from './fixtures';

interface Dot {
  readonly nodes: Map<string, string>;
  /** cluster label -> node ids in it */
  readonly clusters: Map<string, string[]>;
  readonly edges: { from: string; to: string; label: string; dashed: boolean }[];
}

const unquote = (s: string): string => s.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');

/** A parser for the subset of DOT the renderer writes (one statement per line). */
function parseDot(text: string): Dot {
  const lines = text.trim().split('\n');
  expect(lines[0]).toMatch(/^digraph "[^"]*" \{$/);
  expect(lines[lines.length - 1]).toBe('}');
  const nodes = new Map<string, string>();
  const clusters = new Map<string, string[]>();
  const edges: Dot['edges'] = [];
  let cluster: string[] | undefined;
  for (const raw of lines.slice(1, -1)) {
    const line = raw.trim();
    let m: RegExpMatchArray | null;
    if ((m = line.match(/^subgraph (cluster_\w+) \{$/))) cluster = [];
    else if (cluster && (m = line.match(/^label="((?:[^"\\]|\\.)*)";$/))) clusters.set(unquote(m[1]!), cluster);
    else if (line === '}') cluster = undefined;
    else if ((m = line.match(/^(\w+) -> (\w+) \[label="((?:[^"\\]|\\.)*)"(, style=dashed)?\];$/))) edges.push({ from: m[1]!, to: m[2]!, label: unquote(m[3]!), dashed: !!m[4] });
    else if ((m = line.match(/^(\w+) \[(?:shape=\w+, )?label="((?:[^"\\]|\\.)*)"\];$/))) {
      nodes.set(m[1]!, unquote(m[2]!));
      cluster?.push(m[1]!);
    } else if (!/^(rankdir|node|edge|style)\b/.test(line)) throw new Error(`unexpected DOT line: ${line}`);
  }
  return { nodes, clusters, edges };
}

function compile(m: Module): Module {
  return runPipeline(m, defaultPipeline(), createPassContext());
}

const hasEdge = (d: Dot, from: string, to: string, label?: string | RegExp): boolean =>
  d.edges.some((e) => e.from === from && e.to === to && (label === undefined || (typeof label === 'string' ? e.label === label : label.test(e.label))));

describe('renderBlocksDot', () => {
  const m = compile(buildZooDit({ ...ZOO_BASE, blocks: ['joint', 'joint', 'single', 'single', 'single'] }));
  const dot = parseDot(renderBlocksDot(m.graph, discoverBlocks(m.graph), 'flux-like'));

  test('one box per block, in a cluster per group labelled with kind and count', () => {
    expect([...dot.clusters.entries()]).toEqual([
      ['double-stream x2', ['block_0', 'block_1']],
      ['single-stream x3', ['block_2', 'block_3', 'block_4']],
    ]);
    expect(dot.nodes.get('block_0')).toMatch(/^block 0: double-stream\n\d+ nodes, 1 attention$/);
    expect(dot.nodes.get('block_4')).toMatch(/^block 4: single-stream\n/);
    expect([...dot.nodes.keys()].filter((k) => k.startsWith('input_'))).toEqual(['input_0', 'input_1', 'input_2']);
    expect(dot.nodes.get('input_0')).toBe('hidden_states\nf32[2,12,8]');
    expect(dot.nodes.has('prologue') && dot.nodes.has('head') && dot.nodes.has('output_0')).toBe(true);
  });

  test('streams are edges: two into block 0 (main image, context text), merged into one at block 2', () => {
    expect(hasEdge(dot, 'prologue', 'block_0', 'f32[2,12,16] (main)')).toBe(true);
    expect(hasEdge(dot, 'prologue', 'block_0', 'f32[2,5,16] (context)')).toBe(true);
    expect(hasEdge(dot, 'block_0', 'block_1', 'f32[2,12,16]')).toBe(true);
    expect(hasEdge(dot, 'block_0', 'block_1', 'f32[2,5,16]')).toBe(true);
    expect(hasEdge(dot, 'block_1', 'block_2', 'f32[2,17,16]')).toBe(true);
    expect(hasEdge(dot, 'block_2', 'block_3')).toBe(true);
    expect(hasEdge(dot, 'block_3', 'block_4')).toBe(true);
    expect(hasEdge(dot, 'block_4', 'head', 'f32[2,17,16]')).toBe(true);
    expect(hasEdge(dot, 'head', 'output_0', 'f32[2,12,8]')).toBe(true);
    // No stream skips a block.
    const solidBlockEdges = dot.edges.filter((e) => !e.dashed && e.from.startsWith('block_') && e.to.startsWith('block_'));
    for (const e of solidBlockEdges) expect(Number(e.to.slice(6))).toBe(Number(e.from.slice(6)) + 1);
  });

  test('side inputs (time embedding) are dashed edges from the prologue; inputs feed the prologue', () => {
    for (let i = 0; i < 5; i++) expect(dot.edges.some((e) => e.from === 'prologue' && e.to === `block_${i}` && e.dashed)).toBe(true);
    for (let i = 0; i < 3; i++) expect(hasEdge(dot, `input_${i}`, 'prologue')).toBe(true);
  });

  test('labels with quotes and newlines are escaped', () => {
    const text = renderBlocksDot(m.graph, discoverBlocks(m.graph), 'a "quoted"\nname');
    expect(text.split('\n')[0]).toBe('digraph "a \\"quoted\\"\\nname" {');
  });
});

describe('paradit inspect --dot', () => {
  const bundle = path.join(REPO_ROOT, 'packages/cli/dist/paradit.cjs');
  if (!fs.existsSync(bundle)) {
    test.skip(`skipped: ${bundle} is absent (run node scripts/build.mjs)`, () => undefined);
    return;
  }
  test('writes the drawing of an SD3-like model and still prints the JSON report', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-dot-'));
    try {
      const file = path.join(dir, 'model.onnx');
      saveModel(buildZooDit({ ...ZOO_BASE, blocks: ['joint-dual', 'joint', 'joint-last'] }), file);
      const out = path.join(dir, 'blocks.dot');
      const r = spawnSync(process.execPath, [bundle, 'inspect', file, '--json', '--dot', out], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const json = JSON.parse(r.stdout) as { blocks: { kind: string; count: number }[]; streams: unknown[] };
      expect(json.streams).toEqual([
        { role: 'main', dtype: 'f32', shape: [2, 12, 16] },
        { role: 'context', dtype: 'f32', shape: [2, 5, 16] },
      ]);
      expect(json.blocks).toEqual([
        { kind: 'double-stream+self-attn', count: 1 },
        { kind: 'double-stream', count: 1 },
        { kind: 'double-stream-no-context-update', count: 1 },
      ]);
      const dot = parseDot(fs.readFileSync(out, 'utf8'));
      expect([...dot.clusters.keys()]).toEqual(['double-stream+self-attn x1', 'double-stream x1', 'double-stream-no-context-update x1']);
      expect(hasEdge(dot, 'block_1', 'block_2', 'f32[2,5,16]')).toBe(true);
      expect(hasEdge(dot, 'block_2', 'head', 'f32[2,12,16]')).toBe(true);
      // Block 2 returns only the image stream: nothing of the text stream reaches the head.
      expect(dot.edges.filter((e) => e.to === 'head' && !e.dashed).map((e) => e.label)).toEqual(['f32[2,12,16]']);
      // A folder that does not exist: a clear error, exit 2, nothing written.
      const bad = spawnSync(process.execPath, [bundle, 'inspect', file, '--dot', path.join(dir, 'no', 'such', 'x.dot')], { encoding: 'utf8' });
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/--dot .*cannot write the drawing/);
      expect(fs.readdirSync(dir).sort()).toEqual(['blocks.dot', 'model.onnx']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
