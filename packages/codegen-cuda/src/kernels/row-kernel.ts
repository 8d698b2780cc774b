/**
 * Row kernels: T threads per row (a power of two), RPB rows per block, the row held in registers
 * as K chunks of V lanes per thread (chunk c = lane + k*T, so each k is one coalesced sweep).
 * Phases: load the fused prologue (writing prologue sinks on the way), reduce the statistics in
 * fp32 (shuffles, shared memory above a warp), form the normalized row in place (rounded to the
 * output dtype), then evaluate and store the epilogue sinks (modulate, rope, casts...).
 */
import { literal } from './c-types';
import { indexType } from './expr';
import type { Sink } from './plan';
import { storeViewOf } from './plan';
import type { RowPlan } from './row-plan';
import { Evaluator, Params } from './eval';
import type { Chunk } from './eval';
import { computeType, roundTo, toStorage } from './c-types';
import { SourceBuilder } from './source-builder';

interface RowLaunch {
  readonly source: string;
  readonly grid: number;
  readonly block: number;
  readonly params: Params;
}

export function emitRow(name: string, plan: RowPlan, prologue: readonly Sink[], epilogue: readonly Sink[]): RowLaunch {
  const { L, V, T, K } = plan;
  const shape = plan.shape;
  const C = L / V;
  const RPB = T >= 256 ? 1 : 256 / T;
  const BLOCK = T * RPB;
  const rows = plan.rows;
  const lead = shape.slice(0, -1);
  const numel = rows * L;
  const idx = indexType(numel, [plan.input, plan.weight, plan.bias, ...prologue.map((x) => x.expr), ...epilogue.map((x) => x.expr)]);
  const b = new SourceBuilder();
  const params = new Params();
  const ev = new Evaluator(b, params, idx, (_p, slot, v) => `x[${slot}][${v}]`);
  const guardRows = rows % RPB !== 0;
  const guardChunks = C % T !== 0;
  b.emit(`__shared__ float red[${Math.max(1, BLOCK / 32)}];`);
  b.emit(`const int lt = threadIdx.x${RPB > 1 ? ` % ${T}` : ''};`);
  b.emit(`const ${idx} row = (${idx})blockIdx.x${RPB > 1 ? ` * ${RPB} + threadIdx.x / ${T}` : ''};`);
  if (guardRows) b.emit(`const bool active = row < ${rows};`);
  if (lead.length) b.emit(`${idx} rr = row;`);
  const start: string[] = [];
  for (let d = lead.length - 1; d >= 0; d--) {
    if (d === 0) b.emit(`const ${idx} i${d} = rr;`);
    else {
      b.emit(`const ${idx} i${d} = rr % ${lead[d]};`);
      b.emit(`rr /= ${lead[d]};`);
    }
    start.unshift(`i${d}`);
  }
  const chunks: Chunk[] = [];
  for (let k = 0; k < K; k++) {
    b.emit(`const int j${k} = (lt + ${k * T}) * ${V};`);
  }
  const kHalf = (C / 2) % T === 0 ? C / 2 / T : undefined;
  for (let k = 0; k < K; k++) {
    const base: Chunk = { key: `k${k}`, start: [...start, `j${k}`], lanes: V, slot: k };
    chunks.push(base);
  }
  const withPartner = (k: number): Chunk => {
    const c = chunks[k]!;
    if (kHalf === undefined) return c;
    const p = k < kHalf ? k + kHalf : k - kHalf;
    return { ...c, partner: chunks[p]! };
  };
  const guard = (k: number): string | undefined => {
    const conds: string[] = [];
    if (guardRows) conds.push('active');
    if (guardChunks && (k + 1) * T > C) conds.push(`j${k} < ${L}`);
    return conds.length ? conds.join(' && ') : undefined;
  };
  const inGuard = (k: number, body: () => void): void => {
    const g = guard(k);
    if (g) b.open(`if (${g})`);
    ev.push();
    body();
    ev.pop();
    if (g) b.close();
  };
  const pad = plan.op === 'softmax' || plan.op === 'log_softmax' || plan.op === 'max' ? '-__int_as_float(0x7f800000)' : plan.op === 'min' ? '__int_as_float(0x7f800000)' : plan.op === 'prod' ? '1.0f' : '0.0f';
  b.emit(`float x[${K}][${V}];`);
  // Phase 1: load the row (and write prologue sinks).
  for (let k = 0; k < K; k++) {
    if (guard(k)) b.emit(`#pragma unroll\nfor (int v = 0; v < ${V}; v++) x[${k}][v] = ${pad};`);
    inGuard(k, () => {
      const lanes = ev.eval(plan.input, chunks[k]!);
      lanes.forEach((l, v) => b.emit(`x[${k}][${v}] = (float)(${l});`));
      for (const s of prologue) ev.store(storeViewOf(s), chunks[k]!, ev.eval(s.expr, chunks[k]!));
    });
  }
  // Phase 2: statistics.
  const all = (f: (k: number, v: number) => string): string[] => {
    const out: string[] = [];
    for (let k = 0; k < K; k++) for (let v = 0; v < V; v++) out.push(f(k, v));
    return out;
  };
  const sum = (terms: string[]): void => {
    b.emit('float acc = 0.0f;');
    for (const t of terms) b.emit(`acc += ${t};`);
    b.emit(`acc = pdt_row_sum<${T}>(acc, red);`);
  };
  const inv = `(1.0f / ${L}.0f)`;
  const writeReduced = (value: string): void => {
    b.emit(`const float res = ${value};`);
    const out = params.write(plan.outValue);
    b.open(`if (lt == 0${guardRows ? ' && active' : ''})`);
    b.emit(`${out}[row] = ${toStorage(plan.outDtype, `(${computeType(plan.outDtype)})res`)};`);
    b.close();
  };
  switch (plan.op) {
    case 'rms_norm':
      sum(all((k, v) => `x[${k}][${v}] * x[${k}][${v}]`));
      b.emit(`const float scale = rsqrtf(acc * ${inv} + ${literal('f32', plan.eps)});`);
      break;
    case 'layer_norm':
      sum(all((k, v) => `x[${k}][${v}]`));
      b.emit(`const float mean = acc * ${inv};`);
      b.emit('float acc2 = 0.0f;');
      for (let k = 0; k < K; k++) {
        const g = guardChunks && (k + 1) * T > C ? `j${k} < ${L}` : undefined;
        for (let v = 0; v < V; v++) {
          const d = `(x[${k}][${v}] - mean)`;
          b.emit(`acc2 += ${g ? `(${g}) ? ${d} * ${d} : 0.0f` : `${d} * ${d}`};`);
        }
      }
      b.emit(`acc2 = pdt_row_sum<${T}>(acc2, red);`);
      b.emit(`const float scale = rsqrtf(acc2 * ${inv} + ${literal('f32', plan.eps)});`);
      break;
    case 'softmax':
    case 'log_softmax':
    case 'max':
    case 'min': {
      const f = plan.op === 'min' ? 'fminf' : 'fmaxf';
      b.emit(`float m = ${pad};`);
      for (const t of all((k, v) => `x[${k}][${v}]`)) b.emit(`m = ${f}(m, ${t});`);
      b.emit(plan.op === 'min' ? `m = -pdt_row_max<${T}>(-m, red);` : `m = pdt_row_max<${T}>(m, red);`);
      if (plan.op === 'max' || plan.op === 'min') writeReduced('m');
      else {
        sum(all((k, v) => `expf(x[${k}][${v}] - m)`));
        if (plan.op === 'log_softmax') b.emit('const float lse = m + logf(acc);');
        else b.emit('const float rcp = 1.0f / acc;');
      }
      break;
    }
    case 'sum':
    case 'mean':
    case 'sumsq':
    case 'l1':
    case 'l2': {
      const term = plan.op === 'sumsq' || plan.op === 'l2' ? (k: number, v: number) => `x[${k}][${v}] * x[${k}][${v}]` : plan.op === 'l1' ? (k: number, v: number) => `fabsf(x[${k}][${v}])` : (k: number, v: number) => `x[${k}][${v}]`;
      sum(all(term));
      writeReduced(plan.op === 'mean' ? `acc * ${inv}` : plan.op === 'l2' ? 'sqrtf(acc)' : 'acc');
      break;
    }
    case 'prod':
      throw new Error('ReduceProd goes to the loop kernel');
  }
  if (!plan.reduces) {
    // Phase 3: the row value in place, rounded to the output dtype.
    for (let k = 0; k < K; k++) {
      inGuard(k, () => {
        const w = plan.weight ? ev.eval(plan.weight, chunks[k]!) : undefined;
        const bias = plan.bias ? ev.eval(plan.bias, chunks[k]!) : undefined;
        for (let v = 0; v < V; v++) {
          const xv = `x[${k}][${v}]`;
          let y: string;
          if (plan.op === 'rms_norm') y = `${xv} * scale`;
          else if (plan.op === 'layer_norm') y = `(${xv} - mean) * scale`;
          else if (plan.op === 'softmax') y = `expf(${xv} - m) * rcp`;
          else y = `${xv} - lse`;
          if (w) y = `${y} * (float)(${w[v]})`;
          if (bias) y = `${y} + (float)(${bias[v]})`;
          b.emit(`${xv} = ${roundTo(plan.outDtype, y)};`);
        }
      });
    }
    // Phase 4: epilogue sinks.
    for (let k = 0; k < K; k++) {
      inGuard(k, () => {
        const ch = withPartner(k);
        for (const s of epilogue) ev.store(storeViewOf(s), ch, ev.eval(s.expr, ch));
      });
    }
  }
  const body = b.text();
  const source =
    ev.globals.join('') +
    `extern "C" __global__ void __launch_bounds__(${BLOCK}) ${name}(${params.decl()}) {\n` +
    body.split('\n').filter((l) => l).map((l) => `  ${l}`).join('\n') +
    '\n}\n';
  return { source, grid: Math.ceil(rows / RPB), block: BLOCK, params };
}
