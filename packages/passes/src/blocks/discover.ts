/**
 * Transformer-block discovery (analysis; the module is not changed).
 *
 * 1. Residual units along the stream(s) (residual.ts).
 * 2. Block boundaries: a block starts at an attention unit (or a linear attention's, which has
 *    no Softmax) that follows a unit which closes a block (a feed-forward unit, or an attention
 *    unit with an MLP beside it, as in FLUX's single-stream blocks). So Wan's self-attention, cross-attention and feed-forward units form
 *    one block, and FLUX's joint attention with both streams' feed-forwards form one block.
 *    Each block is then made convex (nodes on a path from the block to itself join it).
 * 3. Each block also takes the nodes only it uses: its AdaLN modulation linears, and work on a
 *    stream whose residual was pruned (claim.ts).
 * 4. Blocks are hashed modulo weights; consecutive identical blocks form a group, named by what
 *    the block is (kinds.ts).
 *
 * A stream is a residual chain that persists across blocks: a block's stream inputs are the
 * values from outside it that derive from a residual chain and are its current state (a value
 * that an earlier block already updated through a residual, read again as a cross-attention
 * context, is a side input). Values derived from a stream inside the block are the block's own
 * nodes, never extra streams.
 *
 * The report names the token streams, the first block, the region after it, and the output head.
 *
 *   FLUX:  prologue | [double-stream] x2 | [single-stream] x4 | head
 *          streams entering block 0: image (main, reaches the output), text (context)
 */
import type { Graph, Node, Value } from '@paradit/ir';
import { GraphView, METADATA_OPS } from './graph-view';
import { ResidualUnit, findResidualOps, isAttentionNode, residualUnits } from './residual';
import { blockSignature } from './signature';
import { claimSideNodes, makeConvex, streamValues } from './claim';
import { BlockGroup, externalInputs, nameGroups } from './kinds';
import type { NamedBlock } from './kinds';

export type { BlockGroup } from './kinds';

export interface Block extends NamedBlock {
  /** Values from outside the block that are not streams (time embedding, RoPE tables, masks). */
  readonly globalInputs: Value[];
  readonly attentionCount: number;
}

/** A token stream entering the first block. */
export interface StreamInfo {
  /** The value entering block 0. */
  readonly value: Value;
  /** "main" for the stream that reaches the graph output, else "context". */
  readonly role: 'main' | 'context';
}

export interface BlockReport {
  readonly blocks: Block[];
  readonly groups: BlockGroup[];
  /** Index into the first block's streamInputs of the stream that reaches the output. */
  readonly mainStream: number;
  /** The streams entering the first block, in its streamInputs order. */
  readonly streams: StreamInfo[];
  /**
   * Blocks that run before the latent enters a stream (a text token refiner); their nodes are in
   * the prologue, and they are not in `blocks` or `groups`.
   */
  readonly preBlocks: Block[];
  readonly preGroups: BlockGroup[];
  /** Nodes before the first block (embedders, timestep and positional tables, pre-blocks). */
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
  makeConvex(view, owner, groupsOfUnits.length);
  claimSideNodes(view, owner, streamValues(units));
  // Blocks before the first one whose residuals run on the latent (a text token refiner, as in
  // HunyuanVideo's context embedder) prepare a condition: they are reported apart, belong to the
  // prologue, and their chain is no stream of the main blocks (the refined text is a context
  // unless a main block updates it). Without an identifiable latent input every block counts.
  const latent = latentInput(view);
  const skipsOf = (us: readonly ResidualUnit[]): Value[] => us.flatMap((u) => u.residuals.map((r) => r.skip));
  const cut = latent ? Math.max(0, groupsOfUnits.findIndex((us) => skipsOf(us).some((v) => view.dependsOn(v, latent)))) : 0;
  const preDerived = descendants(view, groupsOfUnits.slice(0, cut).flatMap(skipsOf));
  const streamDerived = descendants(view, groupsOfUnits.slice(cut).flatMap(skipsOf));

  const nodesOf: Node[][] = groupsOfUnits.map(() => []);
  for (const n of g.nodes) {
    const b = owner.get(n);
    if (b !== undefined) nodesOf[b]!.push(n);
  }
  // The block where each stream value is first used as a residual's skip: after that block the
  // value is an old state of its chain (a cross-attention over the text embedding), not a stream.
  const skipBlock = new Map<Value, number>();
  groupsOfUnits.forEach((us, bi) => {
    for (const u of us) for (const r of u.residuals) if (!skipBlock.has(r.skip)) skipBlock.set(r.skip, bi);
  });
  const isStream = (v: Value, block: number): boolean => (block < cut ? preDerived : streamDerived).has(v) && (skipBlock.get(v) ?? block) >= block;
  const all = nodesOf.map((nodes, index) => makeBlock(view, index, nodes, isStream));
  const preBlocks = all.slice(0, cut);
  const blocks = cut === 0 ? all : all.slice(cut).map((b, i): Block => ({ ...b, index: i }));
  const preGroups = nameGroups(view, preBlocks);
  const groups = nameGroups(view, blocks);
  const inPre = new Set(preBlocks.flatMap((b) => b.nodes));
  const firstPos = blocks.length ? view.position.get(blocks[0]!.nodes[0]!)! : g.nodes.length;
  const lastBlockNodes = blocks.length ? blocks[blocks.length - 1]!.nodes : [];
  const lastPos = lastBlockNodes.length ? view.position.get(lastBlockNodes[lastBlockNodes.length - 1]!)! : -1;
  const inBlock0 = new Set(blocks[0]?.nodes ?? []);
  const prologue = g.nodes.filter((n) => (owner.get(n) === undefined || inPre.has(n)) && view.position.get(n)! < firstPos);
  const inPrologue = new Set(prologue);
  const afterFirst = g.nodes.filter((n) => !inBlock0.has(n) && !inPrologue.has(n) && view.position.get(n)! <= lastPos);
  const head = g.nodes.filter((n) => owner.get(n) === undefined && view.position.get(n)! > lastPos);
  const mainStream = blocks.length ? mainStreamIndex(view, blocks[0]!, latent) : 0;
  const streams = (blocks[0]?.streamInputs ?? []).map((value, i): StreamInfo => ({ value, role: i === mainStream ? 'main' : 'context' }));
  return { blocks, groups, preBlocks, preGroups, mainStream, streams, prologue, afterFirst, head };
}

/** Step 2: consecutive units -> blocks. Units before the first token-mixing unit are not blocks. */
function splitIntoBlocks(units: readonly ResidualUnit[]): ResidualUnit[][] {
  const blocks: ResidualUnit[][] = [];
  let prevCloses = true;
  for (const u of units) {
    if (u.mixing.length > 0 && prevCloses) blocks.push([u]);
    else if (blocks.length > 0) blocks[blocks.length - 1]!.push(u);
    else continue;
    prevCloses = u.closes;
  }
  return blocks;
}

/** Values computed from the data of `roots` (Shape and Size read only the type: a mask of ones sized like the stream is not stream data). */
function descendants(view: GraphView, roots: readonly Value[]): Set<Value> {
  const out = new Set<Value>(roots);
  for (const n of view.graph.nodes) {
    if (METADATA_OPS.has(n.op)) continue;
    if (n.inputs.some((v) => v && out.has(v))) for (const o of n.outputs) out.add(o);
  }
  return out;
}

function makeBlock(view: GraphView, index: number, nodes: Node[], isStream: (v: Value, block: number) => boolean): Block {
  const inside = new Set(nodes);
  const external = externalInputs(nodes);
  const graphOutputs = new Set(view.graph.outputs);
  const streamOutputs = nodes.flatMap((n) => n.outputs.filter((o) => graphOutputs.has(o) || view.usersOf(o).some((u) => !inside.has(u))));
  const attention = nodes.filter(isAttentionNode);
  return {
    index,
    kind: '',
    pruned: false,
    signature: blockSignature(nodes, external),
    nodes,
    streamInputs: external.filter((v) => isStream(v, index)),
    streamOutputs,
    globalInputs: external.filter((v) => !isStream(v, index)),
    attention,
    attentionCount: attention.length,
  };
}

/**
 * The main stream: the first block's stream input derived from the latent input, else the one
 * with the most elements.
 */
function mainStreamIndex(view: GraphView, first: Block, latent: Value | undefined): number {
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

/**
 * The latent input: the graph input with the output's shape, else one that differs from it only
 * in the channel axis 1 (a model that also predicts a variance doubles its output channels).
 */
function latentInput(view: GraphView): Value | undefined {
  const out = view.graph.outputs[0];
  if (!out) return undefined;
  const same = (v: Value, skip: number): boolean => v.shape.length === out.shape.length && v.shape.every((d, i) => i === skip || d === out.shape[i]);
  return view.graph.inputs.find((v) => same(v, -1)) ?? view.graph.inputs.find((v) => out.shape.length >= 2 && same(v, 1));
}
