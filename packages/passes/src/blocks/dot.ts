/**
 * A Graphviz drawing of the block-level structure of a graph (what `inspect --dot FILE` writes):
 * graph inputs, the prologue (naming the pre-blocks it holds, e.g. a text token refiner), one box per block (grouped in a cluster per group of identical
 * blocks, labelled with kind and index), the output head and the graph outputs. Solid edges are
 * token streams (labelled with their type, and for the streams entering block 0 with their role);
 * dashed edges are the side inputs (time embedding, RoPE tables, masks) a block reads from the
 * prologue.
 *
 *     digraph blocks {
 *       prologue -> block_0 [label="f32[1,64,128] (main)"];
 *       subgraph cluster_g0 { label="double-stream x2"; block_0; block_1; }
 *       block_5 -> head [label="f32[1,76,128]"];
 *     }
 */
import type { Graph, Node, Value } from '@paradit/ir';
import type { BlockReport } from './discover';

/** Node ids of the drawing: `input_K`, `prologue`, `block_I`, `head`, `output_K`. */
type Site = string;

export function renderBlocksDot(g: Graph, r: BlockReport, title = 'blocks'): string {
  const owner = new Map<Node, Site>();
  for (const n of r.prologue) owner.set(n, 'prologue');
  for (const b of r.blocks) for (const n of b.nodes) owner.set(n, `block_${b.index}`);
  for (const n of r.head) owner.set(n, 'head');
  const producer = new Map<Value, Node>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const inputIndex = new Map<Value, number>(g.inputs.map((v, i) => [v, i]));

  // Where a value comes from: the sites that own the nodes it is computed from, looking through
  // nodes that belong to no site (the concat/slice between FLUX's double and single blocks).
  const memo = new Map<Value, Set<Site>>();
  const sourcesOf = (v: Value): Set<Site> => {
    const known = memo.get(v);
    if (known) return known;
    const out = new Set<Site>();
    memo.set(v, out);
    const i = inputIndex.get(v);
    const p = producer.get(v);
    if (i !== undefined) out.add(`input_${i}`);
    else if (p && owner.has(p)) out.add(owner.get(p)!);
    else if (p) for (const x of p.inputs) if (x && !x.constant) for (const s of sourcesOf(x)) out.add(s);
    return out;
  };

  const lines: string[] = [`digraph ${quote(title)} {`, '  rankdir=TB;', '  node [shape=box, fontname="Helvetica"];', '  edge [fontname="Helvetica", fontsize=10];'];
  g.inputs.forEach((v, i) => lines.push(`  input_${i} [shape=ellipse, label=${quote(`${v.name || `input ${i}`}\n${typeText(v)}`)}];`));
  const pre = r.preGroups.map((grp) => `${grp.kind} x${grp.count}`).join(', ');
  lines.push(`  prologue [label=${quote(`prologue\n${r.prologue.length} nodes${pre ? `\npre-blocks: ${pre}` : ''}`)}];`);
  r.groups.forEach((grp, gi) => {
    lines.push(`  subgraph cluster_g${gi} {`, `    label=${quote(`${grp.kind} x${grp.count}`)};`, '    style=rounded;');
    for (const bi of grp.blocks) {
      const b = r.blocks[bi]!;
      const attn = `${b.attentionCount} attention${b.attentionCount === 1 ? '' : 's'}`;
      lines.push(`    block_${bi} [label=${quote(`block ${bi}: ${b.kind}${b.pruned ? ' (pruned)' : ''}\n${b.nodes.length} nodes, ${attn}`)}];`);
    }
    lines.push('  }');
  });
  lines.push(`  head [label=${quote(`head\n${r.head.length} nodes`)}];`);
  g.outputs.forEach((v, i) => lines.push(`  output_${i} [shape=ellipse, label=${quote(`${v.name || `output ${i}`}\n${typeText(v)}`)}];`));

  const edges = new Set<string>();
  const edge = (from: Site, to: Site, label: string, dashed = false): void => {
    if (from === to) return;
    const attrs = [`label=${quote(label)}`, ...(dashed ? ['style=dashed'] : [])];
    edges.add(`  ${from} -> ${to} [${attrs.join(', ')}];`);
  };
  const intoSite = (to: Site, nodes: readonly Node[]): void => {
    const seen = new Set<Value>();
    for (const n of nodes) {
      for (const v of n.inputs) {
        if (!v || v.constant || seen.has(v) || (producer.get(v) && owner.get(producer.get(v)!) === to)) continue;
        seen.add(v);
        for (const s of sourcesOf(v)) edge(s, to, typeText(v), to === 'head' && s === 'prologue');
      }
    }
  };
  intoSite('prologue', r.prologue);
  for (const b of r.blocks) {
    const site = `block_${b.index}`;
    b.streamInputs.forEach((v) => {
      const role = b.index === 0 ? r.streams.find((s) => s.value === v)?.role : undefined;
      for (const s of sourcesOf(v)) edge(s, site, role ? `${typeText(v)} (${role})` : typeText(v));
    });
    const sides = new Map<Site, number>();
    for (const v of b.globalInputs) for (const s of sourcesOf(v)) if (s !== site) sides.set(s, (sides.get(s) ?? 0) + 1);
    for (const [s, k] of sides) edge(s, site, `${k} side input${k === 1 ? '' : 's'}`, true);
  }
  intoSite('head', r.head);
  g.outputs.forEach((v, i) => {
    for (const s of sourcesOf(v)) edge(s, `output_${i}`, typeText(v));
  });
  lines.push(...edges, '}');
  return `${lines.join('\n')}\n`;
}

function typeText(v: Value): string {
  return `${v.dtype}[${v.shape.join(',')}]`;
}

/** A DOT string literal. */
function quote(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}
