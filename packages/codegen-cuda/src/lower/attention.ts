/**
 * Attention lowering onto the flash-attention kernel (kernels/attention.ts).
 *
 * Shape letters: B batch, N heads, S sequence, H head dim.
 * The kernel addresses q/k/v/o through (batch, head, sequence) strides, so the head-split and
 * head-merge transposes around attention fold into strides instead of running as copies:
 *
 *   %t = Transpose(%x: [B,S,N,H]) {perm=[0,2,1,3]}      (only read by attention)
 *   %o = attention(%q, %k, %t)                         -> v read from %x, strides {b:S*N*H, h:H, s:N*H}
 *   %r = Transpose(%o) {perm=[0,2,1,3]} : [B,S,N,H]    -> o written into %r's buffer directly
 *
 * Only bf16/f16 with head dims 64/128 go to the flash kernel; `flashSupported` says no otherwise
 * and decompose-attention.ts turns such nodes into GEMMs and a softmax.
 */
import type { Node, Value } from '@paradit/ir';
import { attrsOf } from '@paradit/ir';
import { emitAttention } from '../kernels/attention';
import type { AttentionMaskKind, SeqStrides } from '../kernels/attention';
import type { EmittedArg, EmittedKernel } from '../kernel-types';

const dims = (v: Value): number[] => v.shape as number[];

/** attention, or attention_lse (one ring step: also writes the row log-sum-exp). */
export const isAttentionOp = (op: string): boolean => op === 'attention' || op === 'attention_lse';

export function flashSupported(n: Node): boolean {
  const [q, k, v] = n.inputs;
  if (!q || !k || !v) return false;
  if (q.dtype !== 'bf16' && q.dtype !== 'f16') return false;
  // The kernel writes O in the operands' dtype: a ring step must keep its partial in it too.
  if (n.op === 'attention_lse' && n.outputs[0]!.dtype !== q.dtype) return false;
  const H = dims(q)[3]!;
  const Hv = dims(v)[3]!;
  const ok = (d: number): boolean => d === 64 || d === 128;
  return ok(H) && ok(Hv) && maskKind(n.inputs[3] ?? null) !== undefined;
}

function maskKind(m: Value | null): AttentionMaskKind | undefined {
  if (!m) return 'none';
  switch (m.dtype) {
    case 'bool':
      return 'bool';
    case 'f32':
      return 'additive-f32';
    case 'bf16':
      return 'additive-bf16';
    case 'f16':
      return 'additive-f16';
    default:
      return undefined;
  }
}

const isHeadSwap = (n: Node | undefined): n is Node => {
  const p = n?.attrs['perm'];
  return n !== undefined && n.op === 'Transpose' && p?.kind === 'ints' && p.value.join(',') === '0,2,1,3';
};

/** Strides of a contiguous [B,N,S,H] value. */
const bnsh = (v: Value): SeqStrides => {
  const [, N, S, H] = dims(v) as [number, number, number, number];
  return { b: N * S * H, h: S * H, s: H };
};

/** Strides of [B,N,S,H] read out of a contiguous [B,S,N,H] value (a folded head swap). */
const bsnh = (x: Value): SeqStrides => {
  const [, S, N, H] = dims(x) as [number, number, number, number];
  return { b: S * N * H, h: H, s: N * H };
};

interface AttentionFoldContext {
  /** The producer of a value in this graph. */
  producer(v: Value): Node | undefined;
  /** All readers of v in this graph; undefined when v escapes (graph output, captured, ...). */
  readersIfLocal(v: Value): readonly Node[] | undefined;
}

/** Input transposes every reader of which is a flash attention that can fold them. */
export function foldableInputTransposes(attn: readonly Node[], ctx: AttentionFoldContext): Set<Node> {
  const flash = new Set(attn.filter(flashSupported));
  const out = new Set<Node>();
  for (const n of flash) {
    for (const v of n.inputs.slice(0, 3)) {
      const t = v ? ctx.producer(v) : undefined;
      if (!isHeadSwap(t) || !v) continue;
      const readers = ctx.readersIfLocal(v);
      if (readers && readers.every((r) => flash.has(r) && r.inputs[3] !== v)) out.add(t);
    }
  }
  return out;
}

interface AttentionLowering {
  readonly kernel: EmittedKernel;
  /** Nodes folded into the kernel besides the attention node (its output transpose). */
  readonly alsoCovers: readonly Node[];
}

/**
 * `into` (concat-in-place.ts): write the output (after its head-merge transpose) into another
 * value's buffer with the given strides instead of the transpose's own buffer.
 */
export function lowerFlashAttention(n: Node, folded: ReadonlySet<Node>, ctx: AttentionFoldContext, into?: { readonly value: Value; readonly strides: SeqStrides; readonly covers: readonly Node[] }): AttentionLowering {
  const [q, k, v, mask] = n.inputs as [Value, Value, Value, Value | null | undefined];
  const out = n.outputs[0]!;
  const [B, N, Sq, H] = dims(q) as [number, number, number, number];
  const Nkv = dims(k)[1]!;
  const Skv = dims(k)[2]!;
  const Hv = dims(v)[3]!;
  const operand = (x: Value): { value: Value; strides: SeqStrides; node?: Node } => {
    const t = ctx.producer(x);
    if (t && folded.has(t)) return { value: t.inputs[0]!, strides: bsnh(t.inputs[0]!), node: t };
    return { value: x, strides: bnsh(x) };
  };
  const qo = operand(q);
  const ko = operand(k);
  const vo = operand(v);
  // Output: write straight into the head-merge transpose when it is attention's only reader.
  const readers = ctx.readersIfLocal(out);
  const swap = readers && readers.length === 1 && isHeadSwap(readers[0]) ? readers[0] : undefined;
  if (into && !swap) throw new Error(`attention '${n.name}': can only write into another buffer through its head-merge transpose`);
  const oValue = into ? into.value : swap ? swap.outputs[0]! : out;
  const oStrides = into ? into.strides : swap ? bsnh(oValue) : bnsh(out);
  const kind = maskKind(mask ?? null)!;
  const { scale } = n.op === 'attention_lse' ? attrsOf(n, 'attention_lse') : attrsOf(n, 'attention');
  let maskStrides: { b: number; h: number; q: number; k: number } | undefined;
  if (mask) {
    const ms = dims(mask);
    const full = [...new Array<number>(4 - ms.length).fill(1), ...ms];
    const st = [0, 0, 0, 0];
    let acc = 1;
    for (let i = 3; i >= 0; i--) {
      st[i] = full[i] === 1 ? 0 : acc;
      acc *= full[i]!;
    }
    maskStrides = { b: st[0]!, h: st[1]!, q: st[2]!, k: st[3]! };
  }
  const lse = n.op === 'attention_lse' ? n.outputs[1]! : undefined;
  const ak = emitAttention({ dtype: q.dtype as 'bf16' | 'f16', headDim: H, headDimV: Hv, mask: kind, withLse: lse !== undefined });
  const launch = { batch: B, heads: N, kvHeads: Nkv, sq: Sq, skv: Skv, scale, q: qo.strides, k: ko.strides, v: vo.strides, o: oStrides, ...(maskStrides ? { mask: maskStrides } : {}) };
  const ptr: Record<string, Value | undefined> = { q: qo.value, k: ko.value, v: vo.value, o: oValue, mask: mask ?? undefined, lse };
  const args: EmittedArg[] = ak.args(launch).map((a) => {
    if (a.kind === 'ptr') {
      const val = ptr[a.name];
      if (!val) throw new Error(`attention '${n.name}': the kernel asks for pointer '${a.name}', which this node does not have`);
      return { kind: 'value', value: val };
    }
    return { kind: a.kind, v: a.v };
  });
  const pre = [qo.node, ko.node, vo.node].filter((x): x is Node => x !== undefined);
  const covers = [...new Set(pre), n, ...(swap ? [swap] : []), ...(into ? into.covers : [])];
  const reads = [...new Set([qo.value, ko.value, vo.value, ...(mask ? [mask] : [])])];
  return {
    kernel: { entry: ak.entry, source: ak.source, grid: ak.grid({ batch: B, heads: N, sq: Sq }), block: ak.block, smem: ak.smem, args, covers, reads, writes: lse ? [oValue, lse] : [oValue] },
    alsoCovers: [...(swap ? [swap] : []), ...(into ? into.covers : [])],
  };
}
