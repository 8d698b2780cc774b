/**
 * Concat in place: a last-axis Concat whose every input is written by a GEMM or a flash-attention
 * kernel runs no kernel; each writer stores its piece straight into the Concat's buffer (a GEMM
 * through its output view's element offset and leading dimension, attention through its output
 * strides). FLUX's single blocks concatenate the attention output (3072 wide) and the MLP's GELU
 * output (12288 wide) before proj_out: without this, a copy kernel moves 2 x 141 MB per block.
 *
 *   %y = linear(%h, %w1, %b1) ; %g = gelu(%y)                 -> gemm out = %cat cols [3072, 15360), ld 15360
 *   %a = attention(%q, %k, %v) ; %t = Transpose(%a){0,2,1,3}  -> kernel o = %cat, strides {b:S*15360, h:128, s:15360}
 *   %r = Reshape(%t, [1,-1,3072])
 *   %cat = Concat(%r, %g) {axis=2}                            -> nothing (both pieces are already there)
 *
 * Refs (the CPU backend's definition of each instruction) stay whole-buffer: a writer's ref reads
 * the Concat buffer as it was (`before`, a view of it), slices out the pieces the writer leaves
 * alone and concatenates its own piece in between (`after`, another view of it). So the CPU
 * backend does a read-modify-write of the same bytes and every instruction's ref still maps
 * buffers to buffers; the first writer passes through bytes nothing has written yet, and the last
 * writer leaves the buffer complete before any reader runs (the Concat's readers come after it in
 * node order, and so after every writer).
 *
 * Requires: static shapes; Slice/Concat with input-form starts/ends (opset >= 13).
 * Match: every Concat input (or a Reshape of it whose only reader is the Concat) is read only by
 * the Concat and is either a batch-1 GEMM output with a plain [rows, cols] view, or the head-merge
 * transpose of a flash attention ([B,S,N,H], B*S rows, N*H columns). Anything else: no match.
 */
import { GraphBuilder, Node, Tensor, Value, byteSize, numel } from '@paradit/ir';
import type { DType } from '@paradit/ir';
import type { SeqStrides } from '../kernels/attention';
import type { LAlias, LGemm, RefSpec } from './program';

/** What the lowering needs from the graph (lower-graph.ts's context). */
interface ConcatPlaceContext {
  soleReader(v: Value): Node | undefined;
  producer(v: Value): Node | undefined;
  readersIfLocal(v: Value): readonly Node[] | undefined;
}

/** Where a flash attention writes its output instead of its own buffer. */
interface AttentionInto {
  /** The pointer argument: the Concat value, or a view of it at the piece's first column. */
  readonly value: Value;
  readonly strides: SeqStrides;
  /** Nodes the kernel also covers (the Reshape, if any, and the Concat) for its origin. */
  readonly covers: readonly Node[];
  /** Whole-buffer ref of the kernel (see the header). */
  readonly ref: (base: RefSpec) => RefSpec;
}

interface ConcatPlacement {
  /** GEMM nodes whose lowering is replaced (output view into the Concat, covers, ref). */
  readonly gemms: ReadonlyMap<Node, LGemm>;
  /** Flash attention nodes that write into a Concat. */
  readonly attention: ReadonlyMap<Node, AttentionInto>;
  /** Nodes that run no instruction any more (the Concats and the Reshapes before them). */
  readonly consumed: ReadonlySet<Node>;
  /** The views `before`/`after` (and attention pointers at an offset) of each Concat value. */
  readonly aliases: ReadonlyMap<Value, LAlias>;
}

const dims = (v: Value): number[] => v.shape as number[];

const isHeadSwap = (n: Node | undefined): n is Node => {
  const p = n?.attrs['perm'];
  return n !== undefined && n.op === 'Transpose' && p?.kind === 'ints' && p.value.join(',') === '0,2,1,3';
};

type Piece =
  | { readonly kind: 'gemm'; readonly node: Node; readonly gemm: LGemm; readonly part: Value; readonly reshape?: Node; readonly c0: number; readonly cols: number }
  | { readonly kind: 'attention'; readonly node: Node; readonly swap: Node; readonly part: Value; readonly reshape?: Node; readonly c0: number; readonly cols: number };

function piece(x: Value, cat: Node, rows: number, c0: number, ctx: ConcatPlaceContext, gemmByOut: ReadonlyMap<Value, [Node, LGemm]>, flash: ReadonlySet<Node>): Piece | undefined {
  if (ctx.soleReader(x) !== cat) return undefined;
  const cols = dims(x)[dims(x).length - 1]!;
  let src = x;
  let reshape: Node | undefined;
  const p = ctx.producer(x);
  if (p && p.op === 'Reshape' && p.inputs[0] && ctx.soleReader(p.inputs[0]) === p) {
    reshape = p;
    src = p.inputs[0];
  }
  const withReshape = reshape ? { reshape } : {};
  const g = gemmByOut.get(src);
  if (g) {
    const [node, gm] = g;
    const o = gm.out;
    if (gm.batch !== 1 || o.elemOffset !== 0 || o.ld !== o.cols || o.cols !== cols || o.rows !== rows) return undefined;
    return { kind: 'gemm', node, gemm: gm, part: x, ...withReshape, c0, cols };
  }
  const swap = ctx.producer(src);
  if (!isHeadSwap(swap) || !swap.inputs[0]) return undefined;
  const attn = ctx.producer(swap.inputs[0]);
  const readers = ctx.readersIfLocal(swap.inputs[0]);
  if (!attn || !flash.has(attn) || !readers || readers.length !== 1 || readers[0] !== swap) return undefined;
  const [B, S, N, H] = dims(src) as [number, number, number, number];
  if (dims(src).length !== 4 || B * S !== rows || N * H !== cols) return undefined;
  return { kind: 'attention', node: attn, swap, part: x, ...withReshape, c0, cols };
}

/** Slices of `before` around [c0, c0 + cols) and the Concat of those with `part`: the writer's ref tail. */
function refTail(cat: Value, part: Value, c0: number, cols: number, opset: number): { before: Value; after: Value; nodes: Node[] } {
  const b = new GraphBuilder(opset);
  const rank = dims(cat).length;
  const C = dims(cat)[rank - 1]!;
  const before = new Value(cat.type, `${cat.name || 'concat'}.before`);
  const i64 = (v: number): Value => b.constant(Tensor.from('i64', [1], [v]));
  const slice = (s: number, e: number): Value => b.add('Slice', [before, i64(s), i64(e), i64(rank - 1)])[0]!;
  const parts = [...(c0 > 0 ? [slice(0, c0)] : []), part, ...(c0 + cols < C ? [slice(c0 + cols, C)] : [])];
  const after = b.add('Concat', parts, { axis: { kind: 'int', value: rank - 1 } })[0]!;
  return { before, after, nodes: [...b.build([after]).nodes] };
}

function extend(base: RefSpec, extra: { before: Value; after: Value; nodes: Node[] }): RefSpec {
  return { nodes: [...base.nodes, ...extra.nodes], inputs: [...new Set([...base.inputs, extra.before])], outputs: [extra.after] };
}

/**
 * Finds every Concat that can be built in place and says how each writer changes.
 * `gemms` maps GEMM nodes to their lowering; `flash` holds the attention nodes the flash kernel runs.
 */
export function placeConcats(nodes: readonly Node[], ctx: ConcatPlaceContext, gemms: ReadonlyMap<Node, LGemm>, flash: ReadonlySet<Node>, opset: number): ConcatPlacement {
  const outGemms = new Map<Node, LGemm>();
  const attention = new Map<Node, AttentionInto>();
  const consumed = new Set<Node>();
  const aliases = new Map<Value, LAlias>();
  if (opset < 13) return { gemms: outGemms, attention, consumed, aliases };
  const gemmByOut = new Map<Value, [Node, LGemm]>();
  for (const [n, g] of gemms) gemmByOut.set(g.out.value, [n, g]);
  for (const n of nodes) {
    if (n.op !== 'Concat') continue;
    const cat = n.outputs[0]!;
    const shape = dims(cat);
    const rank = shape.length;
    const axis = n.attrs['axis']?.kind === 'int' ? (n.attrs['axis'] as { value: number }).value : 0;
    if (rank < 2 || (axis + rank) % rank !== rank - 1 || !ctx.readersIfLocal(cat)) continue;
    if (!shape.every((d) => typeof d === 'number' && d > 0)) continue;
    const C = shape[rank - 1]!;
    const rows = numel(shape) / C;
    const inputs = n.inputs;
    if (inputs.length < 2 || inputs.some((x) => !x) || new Set(inputs).size !== inputs.length) continue;
    const pieces: Piece[] = [];
    let c0 = 0;
    for (const x of inputs as Value[]) {
      const p = piece(x, n, rows, c0, ctx, gemmByOut, flash);
      if (!p) break;
      pieces.push(p);
      c0 += p.cols;
    }
    if (pieces.length !== inputs.length || new Set(pieces.map((p) => p.node)).size !== pieces.length) continue;
    const esize = byteSize(cat.dtype as DType);
    // 16-byte rows and piece starts: the attention kernel's vector stores and cuBLASLt's fast
    // kernels both want 16-byte aligned pointers and leading dimensions.
    if ((C * esize) % 16 !== 0 || pieces.some((p) => (p.c0 * esize) % 16 !== 0)) continue;
    consumed.add(n);
    for (const p of pieces) {
      const tail = refTail(cat, p.part, p.c0, p.cols, opset);
      aliases.set(tail.before, { of: cat, byteOffset: 0 });
      aliases.set(tail.after, { of: cat, byteOffset: 0 });
      const extra = [...(p.reshape ? [p.reshape] : []), n];
      if (p.reshape) consumed.add(p.reshape);
      if (p.kind === 'gemm') {
        const g = p.gemm;
        const covers = [...g.covers, ...extra];
        const base: RefSpec = { nodes: [...g.ref.nodes, ...(p.reshape ? [p.reshape] : [])], inputs: g.ref.inputs, outputs: [p.part] };
        outGemms.set(p.node, { ...g, out: { value: cat, elemOffset: p.c0, rows, cols: p.cols, ld: C, batchStride: 0 }, covers, ref: extend(base, tail) });
      } else {
        const [, S, , H] = dims(p.swap.outputs[0]!) as [number, number, number, number];
        // The kernel's o pointer must point at the piece's first column: a view of the Concat at
        // that byte offset, as long as the rest of the buffer (so it ends where the Concat ends).
        let ptr = cat;
        if (p.c0 > 0) {
          ptr = new Value({ dtype: cat.dtype, shape: [numel(shape) - p.c0] }, `${cat.name || 'concat'}@${p.c0}`);
          aliases.set(ptr, { of: cat, byteOffset: p.c0 * esize });
        }
        const reshape = p.reshape;
        attention.set(p.node, {
          value: ptr,
          strides: { b: S * C, h: H, s: C },
          covers: extra,
          ref: (base) => extend({ nodes: [...base.nodes, ...(reshape ? [reshape] : [])], inputs: base.inputs, outputs: [p.part] }, tail),
        });
      }
    }
  }
  return { gemms: outGemms, attention, consumed, aliases };
}
