/**
 * The fragment emitter with the VAE's dedicated kernels: inside a fragment, every
 *   [Resize nearest x2 ->] Conv (group 1, bf16/f16) [-> silu]                    (conv-igemm.ts)
 *   Reshape -> InstanceNormalization -> Reshape -> Mul(gamma) -> Add(beta) [-> silu] (group-norm-silu.ts)
 * becomes one kernel; the nodes around them go, as sub-fragments, to the generic emitter (which
 * also keeps every form these do not cover: fp32 convs, groups, auto_pad, other resizes).
 *
 * Rules (each returns undefined for "no match"):
 *   conv:  Conv(x, w, b?) {group=1}                     -> conv kernel reading x
 *          Conv(Resize(x) {nearest, 2x or 1x}, w, b?)   -> conv kernel reading x, rows iy / 2
 *          silu(Conv(...))                              -> the same with SiLU in the epilogue
 *   norm:  Add(Mul(Reshape(InstanceNormalization(Reshape(x), s, t)), gamma), beta) [silu]
 *                                                       -> group-norm kernel reading x, s, t, gamma, beta
 * Every value inside a match must be read only by the next node of the match (not escape the
 * fragment), so nothing else needs it in a buffer. A match is emitted at its last node's place:
 * what it reads from the fragment comes from nodes before it.
 */
import { Graph } from '@paradit/ir';
import type { AttrValue, Node, Value } from '@paradit/ir';
import type { EmitFragment, EmittedKernel, FragmentLowering } from '../kernel-types';
import { convFitsInt32, emitConvKernel } from './conv-igemm';
import type { ConvSpec } from './conv-igemm';
import { emitGroupNormKernel } from './group-norm-silu';

const dims = (v: Value): number[] => v.shape as number[];
const ints = (a: AttrValue | undefined): number[] | undefined => (a?.kind === 'ints' ? [...a.value] : undefined);
const str = (a: AttrValue | undefined, d: string): string => (a?.kind === 'string' ? a.value : d);
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

interface Local {
  producer(v: Value): Node | undefined;
  /** The one node reading v when v does not escape the fragment, else undefined. */
  soleReader(v: Value): Node | undefined;
}

interface Match {
  readonly nodes: readonly Node[];
  kernel(name: string): EmittedKernel;
}

/** Row/column factors of a nearest Resize whose index map is floor(j / u), u in {1, 2}; else undefined. */
export function nearestUpsample(r: Node): [number, number] | undefined {
  if (r.op !== 'Resize' || str(r.attrs['mode'], 'nearest') !== 'nearest') return undefined;
  const [x] = r.inputs;
  const y = r.outputs[0]!;
  if (!x || dims(x).length !== 4) return undefined;
  const [n, c, h, w] = dims(x) as [number, number, number, number];
  const [n2, c2, h2, w2] = dims(y) as [number, number, number, number];
  const u = [h2 / h, w2 / w];
  if (n2 !== n || c2 !== c || u.some((f) => f !== 1 && f !== 2)) return undefined;
  const ctm = str(r.attrs['coordinate_transformation_mode'], 'half_pixel');
  const nm = str(r.attrs['nearest_mode'], 'round_prefer_floor');
  // asymmetric: j/2 -> floor for floor and round_prefer_floor; half_pixel: j/2 - 1/4 -> rounds to floor(j/2).
  const ok = (ctm === 'asymmetric' && (nm === 'floor' || nm === 'round_prefer_floor')) || ((ctm === 'half_pixel' || ctm === 'pytorch_half_pixel') && (nm === 'round_prefer_floor' || nm === 'round_prefer_ceil'));
  return ok ? (u as [number, number]) : undefined;
}

function silu(v: Value, ctx: Local): Node | undefined {
  const r = ctx.soleReader(v);
  return r && r.op === 'silu' && r.outputs[0]!.dtype === v.dtype ? r : undefined;
}

const valueArg = (value: Value) => ({ kind: 'value' as const, value });

/** conv rule (see the header). */
export function matchConv(n: Node, ctx: Local): Match | undefined {
  if (n.op !== 'Conv') return undefined;
  const [x0, w, b] = n.inputs;
  const out = n.outputs[0]!;
  if (!x0 || !w || dims(x0).length !== 4 || dims(w).length !== 4) return undefined;
  const dtype = x0.dtype;
  if ((dtype !== 'bf16' && dtype !== 'f16') || w.dtype !== dtype || out.dtype !== dtype || (b && b.dtype !== dtype)) return undefined;
  const group = n.attrs['group']?.kind === 'int' ? n.attrs['group'].value : 1;
  if (group !== 1 || str(n.attrs['auto_pad'], 'NOTSET') !== 'NOTSET') return undefined;
  const up = ctx.producer(x0);
  const u = up && ctx.soleReader(x0) === n ? nearestUpsample(up) : undefined;
  const x = u ? up!.inputs[0]! : x0;
  if (x.dtype !== dtype) return undefined;
  const [B, C, H, W] = dims(x) as [number, number, number, number];
  const [O, Cw, KH, KW] = dims(w) as [number, number, number, number];
  const [, , HO, WO] = dims(out) as [number, number, number, number];
  const pads = ints(n.attrs['pads']) ?? [0, 0, 0, 0];
  const strides = ints(n.attrs['strides']) ?? [1, 1];
  const dil = ints(n.attrs['dilations']) ?? [1, 1];
  if (Cw !== C) return undefined;
  const act = silu(out, ctx);
  const y = act ? act.outputs[0]! : out;
  const spec: ConvSpec = {
    dtype, B, C, H, W, UH: u?.[0] ?? 1, UW: u?.[1] ?? 1, O, HO, WO, KH, KW,
    SH: strides[0]!, SW: strides[1]!, PT: pads[0]!, PL: pads[1]!, DH: dil[0]!, DW: dil[1]!, bias: !!b, silu: !!act,
  };
  if (!convFitsInt32(spec)) return undefined;
  const nodes = [...(u ? [up!] : []), n, ...(act ? [act] : [])];
  return {
    nodes,
    kernel: (name) => {
      const k = emitConvKernel(name, spec);
      const ptr = { x, w, bias: b ?? undefined, y };
      const args = k.params.map((p) => valueArg(ptr[p]!));
      return { entry: k.entry, source: k.source, grid: k.grid, block: k.block, smem: 0, args, covers: nodes, reads: [x, w, ...(b ? [b] : [])], writes: [y] };
    },
  };
}

/** gamma/beta of a per-channel affine: numel C, all dims 1 but the one aligned with axis 1 of `target`. */
function perChannel(v: Value, target: readonly number[]): boolean {
  const s = dims(v);
  if (s.length > target.length) return false;
  const full = [...new Array<number>(target.length - s.length).fill(1), ...s];
  return full.every((d, i) => (i === 1 ? d === target[1] : d === 1));
}

/** The operand of a binary node that is not `v` (undefined if both are). */
function other(n: Node, v: Value): Value | undefined {
  const [a, b] = n.inputs;
  if (a === v && b !== v) return b ?? undefined;
  if (b === v && a !== v) return a ?? undefined;
  return undefined;
}

/** norm rule (see the header), anchored at the InstanceNormalization. */
export function matchGroupNorm(inorm: Node, ctx: Local): Match | undefined {
  if (inorm.op !== 'InstanceNormalization') return undefined;
  const [v1, s, t] = inorm.inputs;
  if (!v1 || !s || !t) return undefined;
  const r1 = ctx.producer(v1);
  if (!r1 || r1.op !== 'Reshape' || ctx.soleReader(v1) !== inorm) return undefined;
  const x = r1.inputs[0]!;
  const xs = dims(x);
  const [B, G, N] = dims(v1) as [number, number, number];
  if (xs.length < 3 || dims(v1).length !== 3 || xs[0] !== B) return undefined;
  const C = xs[1]!;
  const HW = numel(xs.slice(2));
  if (C % G !== 0 || (C / G) * HW !== N) return undefined;
  const r2 = ctx.soleReader(inorm.outputs[0]!);
  if (!r2 || r2.op !== 'Reshape') return undefined;
  const shape2 = dims(r2.outputs[0]!);
  if (shape2[0] !== B || shape2[1] !== C || numel(shape2) !== numel(xs)) return undefined;
  const mul = ctx.soleReader(r2.outputs[0]!);
  const gamma = mul && mul.op === 'Mul' ? other(mul, r2.outputs[0]!) : undefined;
  if (!mul || !gamma || !perChannel(gamma, shape2) || dims(mul.outputs[0]!).join() !== shape2.join()) return undefined;
  const add = ctx.soleReader(mul.outputs[0]!);
  const beta = add && add.op === 'Add' ? other(add, mul.outputs[0]!) : undefined;
  if (!add || !beta || !perChannel(beta, shape2) || dims(add.outputs[0]!).join() !== shape2.join()) return undefined;
  const dtype = x.dtype;
  if (dtype !== 'f32' && dtype !== 'bf16' && dtype !== 'f16') return undefined;
  const all = [s, t, gamma, beta, v1, inorm.outputs[0]!, r2.outputs[0]!, mul.outputs[0]!, add.outputs[0]!];
  if (all.some((v) => v.dtype !== dtype) || dims(s).join() !== `${G}` || dims(t).join() !== `${G}`) return undefined;
  const act = silu(add.outputs[0]!, ctx);
  const y = act ? act.outputs[0]! : add.outputs[0]!;
  const eps = inorm.attrs['epsilon']?.kind === 'float' ? inorm.attrs['epsilon'].value : 1e-5;
  const nodes = [r1, inorm, r2, mul, add, ...(act ? [act] : [])];
  return {
    nodes,
    kernel: (name) => {
      const k = emitGroupNormKernel(name, { dtype, B, G, CPG: C / G, HW, eps, silu: !!act });
      const args = [...[x, s, t, gamma, beta, y].map(valueArg), { kind: 'f32' as const, v: eps }];
      return { entry: k.entry, source: k.source, grid: k.grid, block: k.block, smem: 0, args, covers: nodes, reads: [...new Set([x, s, t, gamma, beta])], writes: [y] };
    },
  };
}

function localContext(g: Graph): Local {
  const producers = g.producers();
  const readers = new Map<Value, Node[]>();
  for (const n of g.nodes) for (const v of n.inputs) if (v) readers.set(v, [...(readers.get(v) ?? []), n]);
  const escaping = new Set<Value>(g.outputs);
  return {
    producer: (v) => producers.get(v),
    soleReader: (v) => {
      const r = readers.get(v);
      return r && r.length === 1 && !escaping.has(v) ? r[0] : undefined;
    },
  };
}

/** The matches of a fragment, none sharing a node (first match in node order wins). */
export function findConvMatches(g: Graph): Match[] {
  const ctx = localContext(g);
  const taken = new Set<Node>();
  const out: Match[] = [];
  for (const n of g.nodes) {
    const m = matchConv(n, ctx) ?? matchGroupNorm(n, ctx);
    if (!m || m.nodes.some((x) => taken.has(x))) continue;
    m.nodes.forEach((x) => taken.add(x));
    out.push(m);
  }
  return out;
}

/** Sub-fragment of `nodes`: inputs read from outside, outputs used outside (or escaping). */
function subFragment(g: Graph, nodes: readonly Node[]): Graph | undefined {
  const inRun = new Set(nodes);
  const defined = new Set<Value>();
  const inputs: Value[] = [];
  for (const n of nodes) {
    for (const v of n.inputs) if (v && !v.constant && !defined.has(v) && !inputs.includes(v)) inputs.push(v);
    n.outputs.forEach((o) => defined.add(o));
  }
  const escaping = new Set(g.outputs);
  const usedOutside = new Set<Value>();
  for (const n of g.nodes) if (!inRun.has(n)) for (const v of n.inputs) if (v) usedOutside.add(v);
  const outputs = [...defined].filter((v) => escaping.has(v) || usedOutside.has(v));
  return outputs.length > 0 ? new Graph(inputs, [...nodes], outputs, 'fragment') : undefined;
}

/** `inner` with the conv and group-norm kernels taken out of each fragment first. */
export function withConvKernels(inner: EmitFragment): EmitFragment {
  return (fragment, opts) => {
    const matches = findConvMatches(fragment);
    if (matches.length === 0) return inner(fragment, opts);
    const last = new Map<Node, Match>(matches.map((m) => [m.nodes[m.nodes.length - 1]!, m]));
    const inMatch = new Set(matches.flatMap((m) => m.nodes));
    const prefix = opts.namePrefix.replace(/[^A-Za-z0-9_]/g, '_');
    const kernels: EmittedKernel[] = [];
    const aliases: FragmentLowering['aliases'][number][] = [];
    let run: Node[] = [];
    let subs = 0;
    let specials = 0;
    const flush = (): void => {
      const sub = run.length > 0 ? subFragment(fragment, run) : undefined;
      run = [];
      if (!sub) return;
      const l = inner(sub, { ...opts, namePrefix: `${prefix}s${subs++}` });
      kernels.push(...l.kernels);
      aliases.push(...l.aliases);
    };
    for (const n of fragment.nodes) {
      if (!inMatch.has(n)) {
        run.push(n);
        continue;
      }
      const m = last.get(n);
      if (!m) continue;
      flush();
      const kind = m.nodes.some((x) => x.op === 'Conv') ? 'conv' : 'gnorm';
      kernels.push(m.kernel(`${prefix}_${kind}${specials++}`));
    }
    flush();
    return { kernels, aliases };
  };
}
