/**
 * Block kinds (step 4 of block discovery): consecutive blocks with equal signatures form a group,
 * and each group is named by what its block is, from the graph alone:
 *
 * - the number of token streams it carries: "single-stream", "double-stream", "triple-stream";
 * - its attentions beyond the main one, each as joint (queries or keys span several streams),
 *   self (one stream) or cross (keys from no stream: a text context or another side input):
 *   "single-stream+cross-attn" (Wan: self + cross), "double-stream+self-attn" (SD3's first block);
 * - "-no-context-update" when fewer streams leave the block than enter it (SD3's last block
 *   reads the text stream but does not return it);
 * - "-v2", "-v3" when different structures would get the same name.
 *
 * A block that is a copy of the block before it with some stream outputs pruned (an exporter
 * dropped the last block's unused text residual as dead code) joins that block's group and is
 * marked `pruned`: it is the same layer, its dead outputs were never computed.
 */
import type { Node, Value } from '@paradit/ir';
import { GraphView } from './graph-view';
import { blockSignature } from './signature';

/** What `nameGroups` reads and writes of a block. */
export interface NamedBlock {
  readonly index: number;
  /** Group kind, e.g. "double-stream", "single-stream", "single-stream+cross-attn". */
  kind: string;
  /** True when the block is its predecessor with some stream outputs pruned as dead code. */
  pruned: boolean;
  readonly signature: string;
  /** Nodes in graph order. */
  readonly nodes: Node[];
  /** Stream values entering the block, in first-use order. */
  readonly streamInputs: Value[];
  /** Values computed in the block and read after it (the block's stream outputs). */
  readonly streamOutputs: Value[];
  /** Attention nodes of the block, in graph order. */
  readonly attention: Node[];
}

export interface BlockGroup {
  readonly kind: string;
  readonly count: number;
  /** Block indices. */
  readonly blocks: number[];
}

type AttentionRole = 'joint' | 'self' | 'cross';

/**
 * The query and key operands of an attention node. For an unfused one (a Softmax) they are the
 * operands of the scores MatMul above it (through scales, masks and casts), else the scores.
 */
function queryAndKey(view: GraphView, n: Node): [Value | undefined, Value | undefined] {
  if (n.op !== 'Softmax') return [n.inputs[0] ?? undefined, n.inputs[1] ?? undefined];
  let v = n.inputs[0] ?? undefined;
  for (let depth = 0; v && depth < 6; depth++) {
    const p = view.producer.get(v);
    if (!p) break;
    if (p.op === 'MatMul') return [p.inputs[0] ?? undefined, p.inputs[1] ?? undefined];
    if (!['Mul', 'Div', 'Add', 'Where', 'Cast'].includes(p.op)) break;
    // Follow the operand that is not a constant or a mask: the one computed with a MatMul.
    v = p.inputs.find((x) => x && !x.constant && x.shape.length === v!.shape.length && x.dtype !== 'bool') ?? undefined;
  }
  return [n.inputs[0] ?? undefined, n.inputs[0] ?? undefined];
}

/** Which of the block's streams an attention's queries and keys are computed from. */
function attentionRole(view: GraphView, n: Node, streams: readonly Value[]): AttentionRole {
  const [q, k] = queryAndKey(view, n);
  const from = (v: Value | undefined): number => (v ? streams.filter((s) => view.dependsOn(v, s)).length : 0);
  const qs = from(q);
  const ks = from(k);
  if (ks === 0) return 'cross';
  return qs >= 2 || ks >= 2 ? 'joint' : 'self';
}

const STREAM_WORDS = ['', 'single', 'double', 'triple'];

/** A descriptive kind for a block (without the -vN suffix). */
function describeBlock(view: GraphView, b: NamedBlock): string {
  const n = b.streamInputs.length;
  let name = `${STREAM_WORDS[n] ?? String(n)}-stream`;
  const roles = b.attention.map((a) => attentionRole(view, a, b.streamInputs));
  // The main attention: the first joint one, else the first.
  const main = Math.max(0, roles.indexOf('joint'));
  roles.forEach((r, i) => {
    if (i !== main) name += `+${r}-attn`;
  });
  if (b.streamOutputs.length < n) name += '-no-context-update';
  return name;
}

/**
 * True when `b` equals `a` restricted to the ancestors (inside `a`) of some of `a`'s stream
 * outputs: `a` with outputs pruned as dead code.
 */
function isPrunedCopy(a: NamedBlock, b: NamedBlock): boolean {
  const k = b.streamOutputs.length;
  const outs = a.streamOutputs;
  if (k === 0 || k >= outs.length || outs.length > 8 || b.nodes.length >= a.nodes.length) return false;
  for (let mask = 1; mask < 1 << outs.length; mask++) {
    if (popCount(mask) !== k) continue;
    const needed = new Set<Value>(outs.filter((_, i) => mask & (1 << i)));
    const kept: Node[] = [];
    for (let i = a.nodes.length - 1; i >= 0; i--) {
      const n = a.nodes[i]!;
      if (!n.outputs.some((o) => needed.has(o))) continue;
      kept.push(n);
      for (const v of n.inputs) if (v) needed.add(v);
    }
    kept.reverse();
    if (kept.length === b.nodes.length && blockSignature(kept, externalInputs(kept)) === b.signature) return true;
  }
  return false;
}

function popCount(x: number): number {
  let c = 0;
  for (let y = x; y; y &= y - 1) c++;
  return c;
}

/** Non-constant values read by `nodes` and defined outside them, in first-use order. */
export function externalInputs(nodes: readonly Node[]): Value[] {
  const defined = new Set(nodes.flatMap((n) => [...n.outputs]));
  const seen = new Set<Value>();
  const out: Value[] = [];
  for (const n of nodes) {
    for (const v of n.inputs) {
      if (v && !v.constant && !defined.has(v) && !seen.has(v)) {
        seen.add(v);
        out.push(v);
      }
    }
  }
  return out;
}

/** Names every block and groups consecutive blocks of one kind, in order along the stream. */
export function nameGroups(view: GraphView, blocks: readonly NamedBlock[]): BlockGroup[] {
  const kindOf = new Map<string, string>();
  const used = new Map<string, number>();
  const groups: BlockGroup[] = [];
  blocks.forEach((b, i) => {
    let kind = kindOf.get(b.signature);
    const prev = blocks[i - 1];
    if (!kind && prev && isPrunedCopy(prev, b)) {
      kind = prev.kind;
      b.pruned = true;
    }
    if (!kind) {
      const base = describeBlock(view, b);
      const v = (used.get(base) ?? 0) + 1;
      used.set(base, v);
      kind = v === 1 ? base : `${base}-v${v}`;
      kindOf.set(b.signature, kind);
    }
    b.kind = kind;
    const last = groups[groups.length - 1];
    if (last && last.kind === kind) {
      last.blocks.push(b.index);
      (last as { count: number }).count++;
    } else groups.push({ kind, count: 1, blocks: [b.index] });
  });
  return groups;
}
