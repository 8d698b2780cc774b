/**
 * Pointwise kernels: one thread per chunk of V consecutive output elements (16 bytes of the
 * narrowest output), a sized grid of 256-thread blocks. Several sinks of one shape share the
 * kernel (and their common loads). Before emitting, size-1 dims are dropped and dims that every
 * access walks contiguously are merged, so a same-shape elementwise chain indexes in 1-D.
 */
import type { Expr } from './expr';
import { contiguousStrides, indexType, numelOf, visitExpr } from './expr';
import { reshapeExpr, reshapeStrides } from './views';
import type { Sink } from './plan';
import { storeViewOf } from './plan';
import { Evaluator, Params } from './eval';
import type { Chunk } from './eval';
import { byteSizeOf } from './c-types';
import { SourceBuilder } from './source-builder';

const POINTWISE_BLOCK = 256;

interface PointwiseLaunch {
  readonly source: string;
  readonly grid: number;
  readonly block: number;
  readonly params: Params;
  readonly V: number;
  readonly shape: readonly number[];
}

/** Drops unit dims and merges dims that all leaves and the contiguous output walk alike. */
function simplifyDomain(exprs: readonly Expr[], stores: readonly (readonly number[])[] = [contiguousStrides(exprs[0]!.shape)]): { shape: number[]; exprs: Expr[]; stores: number[][] } {
  const shape = exprs[0]!.shape;
  let plain = true;
  const strideSets: (readonly number[])[] = [...stores];
  for (const e of exprs) {
    visitExpr(e, (x) => {
      if (x.kind === 'select' || x.kind === 'rope' || x.kind === 'gather' || x.kind === 'row' || x.kind === 'indexed') plain = false;
      if (x.kind === 'leaf') strideSets.push(x.strides);
    });
  }
  if (!plain) return { shape: [...shape], exprs: [...exprs], stores: stores.map((x) => [...x]) };
  const keep = shape.map((d, i) => i).filter((i) => shape[i] !== 1);
  const sizes: number[] = [];
  const groups: number[][] = [];
  for (const i of keep) {
    const g = groups[groups.length - 1];
    const prev = g ? g[g.length - 1]! : -1;
    const mergeable = g !== undefined && strideSets.every((s) => s[prev] === s[i]! * shape[i]!);
    if (mergeable) {
      g.push(i);
      sizes[sizes.length - 1] = sizes[sizes.length - 1]! * shape[i]!;
    } else {
      groups.push([i]);
      sizes.push(shape[i]!);
    }
  }
  const target = sizes.length ? sizes : [1];
  const out = exprs.map((e) => reshapeExpr(e, target));
  const st = stores.map((x) => reshapeStrides(shape, x, target));
  if (out.some((e) => !e) || st.some((x) => !x)) return { shape: [...shape], exprs: [...exprs], stores: stores.map((x) => [...x]) };
  return { shape: target, exprs: out as Expr[], stores: st as number[][] };
}

/** Largest V (<= 16 bytes of the narrowest output) that every select and rope allows. */
function chooseVector(shape: readonly number[], sinks: readonly Sink[], exprs: readonly Expr[]): number {
  if (shape.length === 0) return 1;
  const last = shape.length - 1;
  const minBytes = Math.min(...sinks.map((s) => byteSizeOf(s.value.dtype)));
  let V = Math.min(8, 16 / minBytes);
  const ok = (v: number): boolean => {
    if (shape[last]! % v !== 0) return false;
    let good = true;
    for (const e of exprs) {
      visitExpr(e, (x) => {
        if (x.kind === 'select' && x.axis === x.shape.length - 1) {
          if (x.starts.some((s) => s % v !== 0) || x.pieces.some((p) => p.shape[x.axis]! % v !== 0)) good = false;
        }
        if (x.kind === 'rope' && x.style === 'rotate_half' && (x.shape[x.shape.length - 1]! / 2) % v !== 0) good = false;
      });
    }
    return good;
  };
  while (V > 1 && !ok(V)) V >>= 1;
  return V;
}

export function emitPointwise(name: string, sinks: readonly Sink[]): PointwiseLaunch {
  const views = sinks.map(storeViewOf);
  const { shape, exprs, stores } = simplifyDomain(sinks.map((s) => s.expr), views.map((v) => v.strides));
  const V = chooseVector(shape, sinks, exprs);
  const numel = numelOf(shape);
  const chunks = Math.max(1, numel / V);
  const idx = indexType(numel, exprs);
  const b = new SourceBuilder();
  const params = new Params();
  const ev = new Evaluator(b, params, idx);
  // The body first (it registers the parameters), then the signature around it.
  const r = shape.length;
  const start: string[] = [];
  b.emit(`${idx} r = (${idx})blockIdx.x * ${POINTWISE_BLOCK} + (${idx})threadIdx.x;`);
  b.emit(`if (r >= ${chunks}) return;`);
  for (let d = r - 1; d >= 0; d--) {
    const n = d === r - 1 ? shape[d]! / V : shape[d]!;
    const scale = d === r - 1 && V > 1 ? ` * ${V}` : '';
    if (d === 0) b.emit(`const ${idx} i${d} = r${scale};`);
    else {
      b.emit(`const ${idx} i${d} = (r % ${n})${scale};`);
      b.emit(`r /= ${n};`);
    }
    start.unshift(`i${d}`);
  }
  const ch: Chunk = { key: 'c', start, lanes: V };
  sinks.forEach((_, k) => ev.store({ ...views[k]!, strides: stores[k]! }, ch, ev.eval(exprs[k]!, ch)));
  const body = b.text();
  const source =
    ev.globals.join('') +
    `extern "C" __global__ void __launch_bounds__(${POINTWISE_BLOCK}) ${name}(${params.decl()}) {\n` +
    body.split('\n').filter((l) => l).map((l) => `  ${l}`).join('\n') +
    '\n}\n';
  return { source, grid: Math.ceil(chunks / POINTWISE_BLOCK), block: POINTWISE_BLOCK, params, V, shape };
}
