/**
 * patchify-conv: a convolution whose stride equals its kernel, with no padding, no dilation and
 * one group (the patch embedding of every DiT) is a GEMM over non-overlapping patches. It becomes
 * a layout change, a `linear` (cuBLASLt) and a layout change back; canonicalize then cancels the
 * output transpose against the `flatten(2).transpose(1, 2)` that follows in DiT exports.
 *
 * Shape letters: B batch, C in channels, O out channels, D_i spatial sizes, k_i kernel (= stride),
 * P_i = D_i / k_i patches per axis, P = prod P_i, K = prod k_i.
 *
 *   before: %y = Conv(%x: [B,C,D1,D2], %w: [O,C,k1,k2], %b) {strides=kernel, pads=0} : [B,O,P1,P2]
 *   after:  %p = Reshape(Transpose(Reshape(%x, [B,C,P1,k1,P2,k2]), [0,2,4,1,3,5]), [B*P, C*K])
 *           %l = linear(%p, Reshape(%w, [O, C*K]), %b) {transB=1}              : [B*P, O]
 *           %y = Reshape(Transpose(Reshape(%l, [B,P,O]), [0,2,1]), [B,O,P1,P2])
 */
import { Module, Node, Tensor, Value } from '@paradit/ir';
import type { AttrValue } from '@paradit/ir';
import { rebuildModule } from '@paradit/ir';
import type { ReplayCtx } from '@paradit/ir';
import type { Pass } from '@paradit/passes';

const dims = (v: Value): number[] => v.shape as number[];
const ints = (a: AttrValue | undefined): number[] | undefined => (a?.kind === 'ints' ? [...a.value] : undefined);

/** The kernel sizes when `n` is a patchifying Conv, else undefined ("no match"). */
export function patchKernel(n: Node): number[] | undefined {
  if (n.op !== 'Conv') return undefined;
  const [x, w] = n.inputs;
  if (!x || !w || !w.constant) return undefined;
  const ws = dims(w);
  const k = ws.slice(2);
  const strides = ints(n.attrs['strides']) ?? k.map(() => 1);
  const pads = ints(n.attrs['pads']) ?? k.map(() => 0).concat(k.map(() => 0));
  const dil = ints(n.attrs['dilations']) ?? k.map(() => 1);
  const group = n.attrs['group']?.kind === 'int' ? n.attrs['group'].value : 1;
  const autoPad = n.attrs['auto_pad']?.kind === 'string' ? n.attrs['auto_pad'].value : 'NOTSET';
  const xs = dims(x);
  const ok =
    group === 1 &&
    (autoPad === 'NOTSET' || autoPad === 'VALID') &&
    k.every((kk, i) => strides[i] === kk && dil[i] === 1 && xs[2 + i]! % kk === 0) &&
    pads.every((p) => p === 0) &&
    ws[1] === xs[1];
  return ok ? k : undefined;
}

function rewrite(n: Node, k: number[], ctx: ReplayCtx): Value[] {
  const b = ctx.builder;
  const name = n.name || 'conv';
  let i = 0;
  const add = (op: string, ins: (Value | null)[], attrs = {}, outputNames?: string[]): Value =>
    b.add(op, ins, attrs, { name: `${name}/patchify_${i++}`, ...(outputNames ? { outputNames } : {}) })[0]!;
  const shape = (s: number[]): Value => b.constant(Tensor.from('i64', [s.length], s));
  const [x0, w0, bias0] = n.inputs.map((v) => (v ? ctx.map(v) : null)) as [Value, Value, Value | null | undefined];
  const [B, C, ...D] = dims(x0) as number[];
  const O = dims(w0)[0]!;
  const P = D.map((d, j) => d / k[j]!);
  const split = [B!, C!, ...P.flatMap((p, j) => [p, k[j]!])];
  // [B, C, P1, k1, P2, k2, ...] -> [B, P1, P2, ..., C, k1, k2, ...]
  const perm = [0, ...P.map((_, j) => 2 + 2 * j), 1, ...P.map((_, j) => 3 + 2 * j)];
  const Ptot = P.reduce((a, c) => a * c, 1);
  const K = k.reduce((a, c) => a * c, 1);
  const patches = add('Reshape', [add('Transpose', [add('Reshape', [x0, shape(split)])], { perm: { kind: 'ints', value: perm } }), shape([B! * Ptot, C! * K])]);
  const w = add('Reshape', [w0, shape([O, C! * K])]);
  const lin = add('linear', [patches, w, bias0 ?? null], { transB: { kind: 'int', value: 1 } });
  const tokens = add('Reshape', [lin, shape([B!, Ptot, O])]);
  const chans = add('Transpose', [tokens], { perm: { kind: 'ints', value: [0, 2, 1] } });
  return [add('Reshape', [chans, shape([B!, O, ...P])], {}, [n.outputs[0]!.name])];
}

/** Rewrites every patchifying Conv whose operands share a float dtype; returns `m` when none. */
export function patchifyConvs(m: Module): Module {
  const eligible = (n: Node): number[] | undefined => {
    const k = patchKernel(n);
    const [x, w, bias] = n.inputs;
    return k && x && w && x.dtype === w.dtype && (!bias || bias.dtype === x.dtype) ? k : undefined;
  };
  if (!m.graph.nodes.some((n) => eligible(n))) return m;
  return rebuildModule(m, {
    hook: (n, ctx) => {
      const k = eligible(n);
      return k ? rewrite(n, k, ctx) : undefined;
    },
  });
}

export const patchifyConvPass: Pass = { name: 'patchify-conv', description: 'patch-embedding Convs (kernel = stride, no padding) become a layout change and a linear', run: (m) => patchifyConvs(m) };
