/**
 * Transformer-block discovery (analysis; the module is not changed).
 *
 * 1. Residual units along the stream(s) (residual.ts).
 * 2. Block boundaries: a block starts at an attention unit that follows a unit which closes a
 *    block (a feed-forward unit, or an attention unit with an MLP beside it, as in FLUX's
 *    single-stream blocks). So Wan's self-attention, cross-attention and feed-forward units form
 *    one block, and FLUX's joint attention with both streams' feed-forwards form one block.
 * 3. Each block also takes the side nodes that only it uses (its AdaLN modulation linears).
 * 4. Blocks are hashed modulo weights; consecutive identical blocks form a group.
 *
 * The report names the token streams, the first block, the region after it, and the output head.
 */
import type { Graph, Node, Value } from '@paradit/ir';
import { GraphView } from './graph-view';
import { ResidualUnit, findResidualOps, isAttentionNode, residualUnits } from './residual';
import { blockSignature } from './signature';

export interface Block {
  readonly index: number;
  /** Group kind, e.g. "double-stream", "single-stream". */
  kind: string;
  readonly signature: string;
  /** Nodes in graph order. */
  readonly nodes: Node[];
  /** Stream values entering the block, in a canonical order. */
  readonly streamInputs: Value[];
  /** Values computed in the block and read after it (the block's stream outputs). */
  readonly streamOutputs: Value[];
  /** Values from outside the block that are not streams (time embedding, RoPE tables, masks). */
  readonly globalInputs: Value[];
  readonly attentionCount: number;
}

export interface BlockGroup {
  readonly kind: string;
  readonly count: number;
  /** Block indices. */
  readonly blocks: number[];
}

export interface BlockReport {
  readonly blocks: Block[];
  readonly groups: BlockGroup[];
  /** Index into the first block's streamInputs/streamOutputs of the stream that reaches the output. */
  readonly mainStream: number;
  /** Nodes before the first block (embedders, timestep and positional tables). */
  readonly prologue: Node[];
  /** Nodes after the first block up to the end of the last block (what First Block Cache skips). */
  readonly afterFirst: Node[];
  /** Nodes after the last block (the output head). */
  readonly head: Node[];
}

export function discoverBlocks(g: Graph): BlockReport {
  const view = new GraphView(g);
  const units = residualUnits(view, findResidualOps(view));
  const groupsOfUnits = splitIntoBlocks(units);
  const owner = new Map<Node, number>();
  groupsOfUnits.forEach((us, bi) => {
    for (const u of us) for (const n of u.body) if (!owner.has(n)) owner.set(n, bi);
  });
  const streamDerived = descendants(view, groupsOfUnits.flatMap((us) => us.flatMap((u) => u.residuals.map((r) => r.skip))));
  claimSideNodes(view, owner, streamDerived);

  const nodesOf: Node[][] = groupsOfUnits.map(() => []);
  for (const n of g.nodes) {
    const b = owner.get(n);
    if (b !== undefined) nodesOf[b]!.push(n);
  }
  const blocks = nodesOf.map((nodes, index) => makeBlock(view, index, nodes, streamDerived));
  const groups = nameGroups(blocks);
  const firstPos = blocks.length ? view.position.get(blocks[0]!.nodes[0]!)! : g.nodes.length;
  const lastBlockNodes = blocks.length ? blocks[blocks.length - 1]!.nodes : [];
  const lastPos = lastBlockNodes.length ? view.position.get(lastBlockNodes[lastBlockNodes.length - 1]!)! : -1;
  const inBlock0 = new Set(blocks[0]?.nodes ?? []);
  const prologue = g.nodes.filter((n) => owner.get(n) === undefined && view.position.get(n)! < firstPos);
  const afterFirst = g.nodes.filter((n) => !inBlock0.has(n) && !prologue.includes(n) && view.position.get(n)! <= lastPos);
  const head = g.nodes.filter((n) => owner.get(n) === undefined && view.position.get(n)! > lastPos);
  return { blocks, groups, mainStream: blocks.length ? mainStreamIndex(view, blocks[0]!) : 0, prologue, afterFirst, head };
}

/** Step 2: consecutive units -> blocks. Units before the first attention unit are not blocks. */
function splitIntoBlocks(units: readonly ResidualUnit[]): ResidualUnit[][] {
  const blocks: ResidualUnit[][] = [];
  let prevCloses = true;
  for (const u of units) {
    if (u.attention.length > 0 && prevCloses) blocks.push([u]);
    else if (blocks.length > 0) blocks[blocks.length - 1]!.push(u);
    else continue;
    prevCloses = u.closes;
  }
  return blocks;
}

function descendants(view: GraphView, roots: readonly Value[]): Set<Value> {
  const out = new Set<Value>(roots);
  for (const n of view.graph.nodes) {
    if (n.inputs.some((v) => v && out.has(v))) for (const o of n.outputs) out.add(o);
  }
  return out;
}

/** Step 3: a node not derived from any stream, all of whose users sit in one block, joins it. */
function claimSideNodes(view: GraphView, owner: Map<Node, number>, streamDerived: Set<Value>): void {
  const outputs = new Set(view.graph.outputs);
  for (let i = view.graph.nodes.length - 1; i >= 0; i--) {
    const n = view.graph.nodes[i]!;
    if (owner.has(n) || n.outputs.some((o) => streamDerived.has(o) || outputs.has(o))) continue;
    let block: number | undefined;
    let ok = true;
    for (const o of n.outputs) {
      for (const u of view.usersOf(o)) {
        const b = owner.get(u);
        if (b === undefined || (block !== undefined && b !== block)) ok = false;
        block = b;
      }
    }
    if (ok && block !== undefined) owner.set(n, block);
  }
}

function makeBlock(view: GraphView, index: number, nodes: Node[], streamDerived: Set<Value>): Block {
  const inside = new Set(nodes);
  const defined = new Set(nodes.flatMap((n) => [...n.outputs]));
  const external: Value[] = [];
  const seen = new Set<Value>();
  for (const n of nodes) {
    for (const v of n.inputs) {
      if (v && !v.constant && !defined.has(v) && !seen.has(v)) {
        seen.add(v);
        external.push(v);
      }
    }
  }
  const graphOutputs = new Set(view.graph.outputs);
  const streamOutputs = nodes.flatMap((n) => n.outputs.filter((o) => graphOutputs.has(o) || view.usersOf(o).some((u) => !inside.has(u))));
  return {
    index,
    kind: '',
    signature: blockSignature(nodes, external),
    nodes,
    streamInputs: external.filter((v) => streamDerived.has(v)),
    streamOutputs,
    globalInputs: external.filter((v) => !streamDerived.has(v)),
    attentionCount: nodes.filter(isAttentionNode).length,
  };
}

/** Step 4: groups of consecutive identical blocks, named by how many streams they carry. */
function nameGroups(blocks: Block[]): BlockGroup[] {
  const groups: BlockGroup[] = [];
  const names = new Map<string, string>();
  const used = new Map<string, number>();
  for (const b of blocks) {
    let kind = names.get(b.signature);
    if (!kind) {
      const n = b.streamInputs.length;
      let base = n === 1 ? 'single-stream' : n === 2 ? 'double-stream' : `${n}-stream`;
      if (b.attentionCount > 1) base += `-${b.attentionCount}attn`;
      const k = (used.get(base) ?? 0) + 1;
      used.set(base, k);
      kind = k === 1 ? base : `${base}-v${k}`;
      names.set(b.signature, kind);
    }
    b.kind = kind;
    const last = groups[groups.length - 1];
    if (last && last.kind === kind) {
      last.blocks.push(b.index);
      (last as { count: number }).count++;
    } else groups.push({ kind, count: 1, blocks: [b.index] });
  }
  return groups;
}

/**
 * The main stream: the first block's stream input derived from the graph input that has the
 * output's shape (the latent), else the one with the most elements.
 */
function mainStreamIndex(view: GraphView, first: Block): number {
  const out = view.graph.outputs[0];
  const latent = view.graph.inputs.find((v) => out && v.shape.length === out.shape.length && v.shape.every((d, i) => d === out.shape[i]));
  if (latent) {
    const fromLatent = first.streamInputs.filter((s) => view.dependsOn(s, latent));
    if (fromLatent.length === 1) return first.streamInputs.indexOf(fromLatent[0]!);
  }
  let best = 0;
  first.streamInputs.forEach((s, i) => {
    const size = (v: Value): number => v.shape.reduce<number>((a, d) => a * (typeof d === 'number' ? d : 1), 1);
    if (size(s) > size(first.streamInputs[best]!)) best = i;
  });
  return best;
}
