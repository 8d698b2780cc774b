/**
 * quantize-linears-fp8, analysis: which linear layers of a module become FP8 and why the others
 * stay in the plan's bf16. The result is a printable plan (tested on its own, shown by `inspect
 * --dtype fp8`); apply.ts rewrites exactly the layers it marks.
 *
 * A layer is `linear(x, w, bias?)`, or `MatMul(x, W)` with a constant 2-D W (rank(x) >= 2). It
 * stays in bf16 when (first reason wins):
 *   pattern    its node name or weight name matches a --keep-bf16 pattern (patterns.ts);
 *   dynamic    its weight is not a constant (nothing to quantize at compile time);
 *   embedder   it runs before the first transformer block (time/text/guidance embedders,
 *              x_embedder, context_embedder: block discovery's prologue);
 *   head       it runs after the last block (norm_out's modulation linear, proj_out);
 *   alignment  K or N is not a multiple of 16 (cuBLASLt's FP8 kernels need 16-byte rows; the
 *              rule is applied on every target so CPU and CUDA plans compute the same thing).
 * Layers inside an If branch (the First Block Cache gate holds blocks 1..n-1) count as in a block.
 * With no transformer block found at all there is no prologue or head to tell apart: every layer
 * is a candidate.
 */
import type { Graph, Node, Value } from '@paradit/ir';
import { isFloat } from '@paradit/ir';
import { discoverBlocks } from '../blocks/discover';
import { discoveryView } from '../blocks/discovery-view';
import { KeepPattern, matchesAny } from './patterns';

export type Fp8Reason = 'pattern' | 'dynamic' | 'embedder' | 'head' | 'alignment';

export interface Fp8Decision {
  /** The layer's node name (its ONNX provenance). */
  readonly node: string;
  readonly op: 'linear' | 'MatMul';
  /** The weight's value name ('' when it has none). */
  readonly weight: string;
  /** Input and output features. */
  readonly k: number | string;
  readonly n: number | string;
  /** undefined: FP8. */
  readonly keep?: Fp8Reason;
  /** For keep = 'pattern': the pattern that matched. */
  readonly pattern?: string;
}

export interface Fp8Plan {
  readonly layers: readonly Fp8Decision[];
  /** True when block discovery found no transformer block (every layer was a candidate). */
  readonly noBlocks: boolean;
  /** The layer nodes marked FP8 (what apply.ts rewrites). */
  readonly fp8Nodes: ReadonlySet<Node>;
}

const REASON_TEXT: { readonly [K in Fp8Reason]: string } = {
  pattern: 'matches --keep-bf16',
  dynamic: 'dynamic weight (not a constant)',
  embedder: 'embedder (before the first transformer block)',
  head: 'final projection (after the last transformer block)',
  alignment: 'K or N not a multiple of 16 (cuBLASLt FP8 alignment)',
};

/** The weight operand of a layer node, with its [K,N] orientation, or undefined if not a layer. */
export function layerOf(n: Node): { readonly x: Value; readonly w: Value; readonly bias?: Value; readonly transB: boolean; readonly op: 'linear' | 'MatMul' } | undefined {
  const [x, w, bias] = n.inputs;
  if (!x || !w || !isFloat(x.dtype) || w.shape.length !== 2) return undefined;
  if (n.op === 'linear') {
    const t = n.attrs['transB'];
    return { x, w, ...(bias ? { bias } : {}), transB: t?.kind === 'int' && t.value === 1, op: 'linear' };
  }
  if (n.op === 'MatMul' && x.shape.length >= 2) return { x, w, transB: false, op: 'MatMul' };
  return undefined;
}

function decide(n: Node, where: 'block' | 'embedder' | 'head', keep: readonly KeepPattern[], fp8: Set<Node>): Fp8Decision | undefined {
  const l = layerOf(n);
  // A MatMul of two activations (attention scores) is no layer at all.
  if (!l || (l.op === 'MatMul' && !l.w.constant)) return undefined;
  const [r0, r1] = l.w.shape as [number | string, number | string];
  const k = l.transB ? r1 : r0;
  const nn = l.transB ? r0 : r1;
  const base = { node: n.name, op: l.op, weight: l.w.name, k, n: nn };
  const hit = matchesAny(keep, [n.name, l.w.name]);
  if (hit) return { ...base, keep: 'pattern', pattern: hit.source };
  if (!l.w.constant) return { ...base, keep: 'dynamic' };
  if (where !== 'block') return { ...base, keep: where };
  if (typeof k !== 'number' || typeof nn !== 'number' || k % 16 !== 0 || nn % 16 !== 0) return { ...base, keep: 'alignment' };
  fp8.add(n);
  return base;
}

function walkSubgraphs(n: Node, keep: readonly KeepPattern[], out: Fp8Decision[], fp8: Set<Node>): void {
  for (const sg of n.subgraphs()) {
    for (const m of sg.nodes) {
      const d = decide(m, 'block', keep, fp8);
      if (d) out.push(d);
      walkSubgraphs(m, keep, out, fp8);
    }
  }
}

/** Decides every layer of `g` (and of its subgraphs), in graph order. */
export function planFp8Linears(g: Graph, keep: readonly KeepPattern[]): Fp8Plan {
  // A ring-sharded step (fp8 runs after context parallelism) has the unsharded model's blocks.
  const view = discoveryView(g);
  const report = discoverBlocks(view.graph);
  const noBlocks = report.blocks.length === 0;
  const prologue = new Set(noBlocks ? [] : report.prologue.map(view.orig));
  const head = new Set(noBlocks ? [] : report.head.map(view.orig));
  const layers: Fp8Decision[] = [];
  const fp8 = new Set<Node>();
  for (const n of g.nodes) {
    const d = decide(n, prologue.has(n) ? 'embedder' : head.has(n) ? 'head' : 'block', keep, fp8);
    if (d) layers.push(d);
    walkSubgraphs(n, keep, layers, fp8);
  }
  return { layers, noBlocks, fp8Nodes: fp8 };
}

/** Counts and the kept layers with their reasons (inspect's text and JSON). */
export function summarizeFp8Plan(p: Fp8Plan): { fp8: number; bf16: number; kept: { node: string; weight: string; reason: string }[] } {
  const kept = p.layers.filter((d) => d.keep !== undefined);
  return {
    fp8: p.layers.length - kept.length,
    bf16: kept.length,
    kept: kept.map((d) => ({ node: d.node, weight: d.weight, reason: d.keep === 'pattern' ? `${REASON_TEXT.pattern} ${d.pattern}` : REASON_TEXT[d.keep!] })),
  };
}

/** One line per layer: `fp8  blocks.0.attn.to_q [16 -> 16]` or `bf16 proj_out [16 -> 32]: final projection ...`. */
export function formatFp8Plan(p: Fp8Plan): string {
  const lines = p.layers.map((d) => {
    const what = `${d.node || '(unnamed)'} [${d.k} -> ${d.n}]`;
    if (d.keep === undefined) return `fp8  ${what}`;
    return `bf16 ${what}: ${d.keep === 'pattern' ? `${REASON_TEXT.pattern} ${d.pattern}` : REASON_TEXT[d.keep]}`;
  });
  if (p.noBlocks) lines.unshift('(no transformer block found: every layer is a candidate)');
  return lines.join('\n');
}
