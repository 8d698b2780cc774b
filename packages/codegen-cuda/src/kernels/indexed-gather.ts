/**
 * Indexed rules of data-movement ops: each output element reads one operand element at a
 * computed position (or a constant). Tile, Pad (constant/reflect/edge/wrap), GatherElements,
 * GatherND, DepthToSpace, SpaceToDepth, Trilu, OneHot, EyeLike, Range, ConstantOfShape.
 * Semantics follow the interpreter's rules (packages/ir/src/ops/shape-*.ts) exactly: integer
 * index math only, so GPU and interpreter agree bit for bit.
 */
import type { Node, OpKind, Value } from '@paradit/ir';
import type { Expr } from './expr';
import { freshId } from './expr';
import type { IndexCtx, PlanAccess } from './indexed';
import { indexed, let_, rule } from './indexed';
import { attrs, constInts, normAxis } from './plan-ops';
import { CodegenError } from './codegen-error';
import { computeType, literal } from './c-types';

type Lower = (node: Node, p: PlanAccess) => (Expr | undefined)[];

const out0 = (node: Node): Value => node.outputs[0]!;

/** A scalar operand: its constant value, or undefined when it is only known at run time. */
function constScalar(node: Node, i: number): number | undefined {
  const v = node.inputs[i];
  if (!v || !v.constant) return undefined;
  return Number(v.constant.tensor().data[0]);
}

/** Reads a (runtime) operand index: `(idx)(v)`, wrapped into [0, size) when negative. */
function wrapIndex(c: IndexCtx, v: string, size: number): string {
  const t = c.tmp('g');
  c.emit(`${c.idx} ${t} = (${c.idx})(${v});`);
  c.emit(`if (${t} < 0) ${t} += ${size};`);
  return t;
}

const Tile: Lower = (node, p) => {
  const x = node.inputs[0]!;
  const xs = p.shape(x);
  const os = p.shape(out0(node));
  const r = rule('tile', (c, at) => c.read(0, at.map((a, d) => (xs[d] === os[d] ? a : xs[d] === 1 ? '0' : `(${a} % ${xs[d]})`))));
  return [indexed(node, out0(node), os, r, [p.get(x)])];
};

/** Source index along one axis of size d for output index i, begin = pads[axis] (shape-pad.ts). */
function padSource(c: IndexCtx, mode: string, i: string, begin: number, d: number): string {
  const k = begin === 0 ? i : `(${i} - ${begin})`;
  if (mode === 'edge') return let_(c, `(${k} < 0 ? 0 : (${k} >= ${d} ? ${d - 1} : ${k}))`);
  if (mode === 'wrap') return let_(c, `(((${k} % ${d}) + ${d}) % ${d})`);
  if (mode === 'reflect') {
    if (d === 1) return '0';
    const per = 2 * (d - 1);
    const m = let_(c, `(((${k} % ${per}) + ${per}) % ${per})`);
    return let_(c, `(${m} < ${d} ? ${m} : ${per} - ${m})`);
  }
  return let_(c, k);
}

const Pad: Lower = (node, p) => {
  const x = node.inputs[0]!;
  const xs = p.shape(x);
  const os = p.shape(out0(node));
  const a = attrs(node);
  const rank = xs.length;
  const mode = a.string('mode', 'constant');
  const oldForm = node.attrs['pads'] !== undefined || node.attrs['paddings'] !== undefined;
  const pads = oldForm ? [...(a.optInts('pads') ?? a.ints('paddings'))] : constInts(node, 1, 'pads')!;
  const axesIn = !oldForm && node.inputs[3] ? constInts(node, 3, 'axes')! : undefined;
  const axes = axesIn ? axesIn.map((ax) => normAxis(node, ax, rank)) : xs.map((_, i) => i);
  const begin = new Array<number>(rank).fill(0);
  axes.forEach((ax, i) => (begin[ax] = pads[i]!));
  if (mode !== 'constant' && xs.some((d) => d === 0)) throw CodegenError.at(node, `cannot ${mode}-pad an empty tensor [${xs.join(',')}]`);
  const args: Expr[] = [p.get(x)];
  let value: string | undefined;
  if (mode === 'constant') {
    const cv = oldForm ? a.float('value', 0) : node.inputs[2] ? constScalar(node, 2) : 0;
    if (cv === undefined) args.push(p.get(node.inputs[2]!));
    else value = literal(x.dtype, Number(cv));
  }
  const r = rule(`pad_${mode}`, (c, at) => {
    if (rank === 0) return c.read(0, []);
    const src = at.map((i, d) => padSource(c, mode, i, begin[d]!, xs[d]!));
    if (mode !== 'constant') return c.read(0, src);
    const inside = src.map((s, d) => (begin[d] === 0 && os[d]! <= xs[d]! ? '' : `${s} >= 0 && ${s} < ${xs[d]}`)).filter((t) => t);
    const t = c.tmp('p');
    const ct = computeType(x.dtype);
    c.emit(`${ct} ${t} = ${value ?? c.read(1, node.inputs[2]!.shape.map(() => '0'))};`);
    if (inside.length === 0) c.emit(`${t} = ${c.read(0, src)};`);
    else c.branch(inside.join(' && '), () => c.emit(`${t} = ${c.read(0, src)};`));
    return t;
  });
  return [indexed(node, out0(node), os, r, args)];
};

const GatherElements: Lower = (node, p) => {
  const [x, ind] = node.inputs as Value[];
  const xs = p.shape(x!);
  const axis = normAxis(node, attrs(node).int('axis', 0), xs.length);
  const os = p.shape(out0(node));
  const r = rule('gather_elements', (c, at) => {
    const g = wrapIndex(c, c.read(1, at), xs[axis]!);
    return c.read(0, at.map((a, d) => (d === axis ? g : a)));
  });
  return [indexed(node, out0(node), os, r, [p.get(x!), p.get(ind!)])];
};

const GatherND: Lower = (node, p) => {
  const [x, ind] = node.inputs as Value[];
  const xs = p.shape(x!);
  const is = p.shape(ind!);
  const b = attrs(node).int('batch_dims', 0);
  const q = is.length;
  const k = is[q - 1]!;
  const os = p.shape(out0(node));
  const r = rule('gather_nd', (c, at) => {
    const lead = at.slice(0, q - 1);
    const idx: string[] = [];
    for (let j = 0; j < k; j++) idx.push(wrapIndex(c, c.read(1, [...lead, String(j)]), xs[b + j]!));
    return c.read(0, [...at.slice(0, b), ...idx, ...at.slice(q - 1)]);
  });
  return [indexed(node, out0(node), os, r, [p.get(x!), p.get(ind!)])];
};

/** Output [N, C/b², H*b, W*b] element (n, c, h, w) reads input channel per mode (shape-layout.ts). */
const DepthToSpace: Lower = (node, p) => {
  const x = node.inputs[0]!;
  const [, C] = p.shape(x);
  const a = attrs(node);
  const bs = a.int('blocksize');
  const crd = a.string('mode', 'DCR') === 'CRD';
  const co = C! / (bs * bs);
  const r = rule('depth_to_space', (c, [n, ch, h, w]) => {
    const b1 = let_(c, `(${h} % ${bs})`);
    const b2 = let_(c, `(${w} % ${bs})`);
    const ic = crd ? `(${ch} * ${bs * bs} + ${b1} * ${bs} + ${b2})` : `((${b1} * ${bs} + ${b2}) * ${co} + ${ch})`;
    return c.read(0, [n!, let_(c, ic), `(${h} / ${bs})`, `(${w} / ${bs})`]);
  });
  return [indexed(node, out0(node), p.shape(out0(node)), r, [p.get(x)])];
};

const SpaceToDepth: Lower = (node, p) => {
  const x = node.inputs[0]!;
  const [, C] = p.shape(x);
  const bs = attrs(node).int('blocksize');
  const r = rule('space_to_depth', (c, [n, ch, h, w]) => {
    const off = let_(c, `(${ch} / ${C})`);
    const ci = `(${ch} % ${C})`;
    return c.read(0, [n!, ci, `(${h} * ${bs} + ${off} / ${bs})`, `(${w} * ${bs} + ${off} % ${bs})`]);
  });
  return [indexed(node, out0(node), p.shape(out0(node)), r, [p.get(x)])];
};

const Trilu: Lower = (node, p) => {
  const x = node.inputs[0]!;
  const os = p.shape(out0(node));
  const upper = attrs(node).int('upper', 1) !== 0;
  const kConst = node.inputs[1] ? constScalar(node, 1) : 0;
  const args = [p.get(x)];
  if (kConst === undefined) args.push(p.get(node.inputs[1]!));
  const r = rule(upper ? 'triu' : 'tril', (c, at) => {
    const i = at[at.length - 2]!;
    const j = at[at.length - 1]!;
    const k = kConst === undefined ? `(${c.idx})(${c.read(1, node.inputs[1]!.shape.map(() => '0'))})` : String(kConst);
    const keep = upper ? `(${j} - ${i} >= ${k})` : `(${j} - ${i} <= ${k})`;
    return `(${keep} ? ${c.read(0, at)} : ${literal(x.dtype, 0)})`;
  });
  return [indexed(node, out0(node), os, r, args)];
};

const OneHot: Lower = (node, p) => {
  const [ind, , values] = node.inputs as Value[];
  const os = p.shape(out0(node));
  const rank = os.length;
  const raw = attrs(node).int('axis', -1);
  const axis = raw < 0 ? raw + rank : raw;
  const depth = os[axis]!;
  const dt = out0(node).dtype;
  const r = rule('one_hot', (c, at) => {
    const h = wrapIndex(c, c.read(0, at.filter((_, d) => d !== axis)), depth);
    return `(${h} == ${at[axis]} ? ${c.read(1, ['1'])} : ${c.read(1, ['0'])})`;
  });
  return [indexed(node, out0(node), os, r, [p.get(ind!), p.get(values!)], dt)];
};

const EyeLike: Lower = (node, p) => {
  const os = p.shape(out0(node));
  const k = attrs(node).int('k', 0);
  const dt = out0(node).dtype;
  const r = rule('eye_like', (_c, [i, j]) => `((${j} - ${i}) == ${k} ? ${literal(dt, 1)} : ${literal(dt, 0)})`);
  return [indexed(node, out0(node), os, r, [])];
};

const Range: Lower = (node, p) => {
  const [start, , delta] = node.inputs as Value[];
  const os = p.shape(out0(node));
  const dt = out0(node).dtype;
  const ct = computeType(dt);
  const r = rule('range', (c, [i]) => `(${ct})(${c.read(0, [])} + (${ct})${i} * ${c.read(1, [])})`);
  return [indexed(node, out0(node), os, r, [p.get(start!), p.get(delta!)])];
};

const ConstantOfShape: Lower = (node, p) => {
  const os = p.shape(out0(node));
  const t = attrs(node).tensor('value');
  const v = t ? Number(t.data[0]) : 0;
  return [{ kind: 'const', id: freshId(), dtype: out0(node).dtype, shape: os, nodes: [node], v }];
};

export const GATHER_LOWERINGS: Readonly<Partial<Record<OpKind, Lower>>> = {
  Tile, Pad, GatherElements, GatherND, DepthToSpace, SpaceToDepth, Trilu, OneHot, EyeLike, Range, ConstantOfShape,
};
