/**
 * The general reduction kernel (any axes, any dtype): one thread per output element, a loop over
 * the reduced elements accumulating in double. Used where the row kernel does not apply: reduced
 * axes that are not the trailing ones, integer data, products, rows too long for registers.
 * Consecutive threads take consecutive kept positions, so reads coalesce when the innermost axis
 * is kept.
 */
import type { LoopPlan } from './plan';
import { contiguousStrides, indexType, numelOf } from './expr';
import { Evaluator, Params } from './eval';
import { computeType, literal, toStorage } from './c-types';
import { SourceBuilder } from './source-builder';

const LOOP_BLOCK = 128;

interface LoopLaunch {
  readonly source: string;
  readonly grid: number;
  readonly block: number;
  readonly params: Params;
}


/** Emits `const idx i<d> = <v> % xs[d]; <v> /= xs[d];` for `axes`, innermost last, and points start[d] at i<d>. */
function unflatten(b: SourceBuilder, idx: string, v: string, xs: readonly number[], axes: readonly number[], start: string[]): void {
  for (let k = axes.length - 1; k >= 0; k--) {
    const d = axes[k]!;
    b.emit(`const ${idx} i${d} = ${v} % ${xs[d]};`);
    b.emit(`${v} /= ${xs[d]};`);
    start[d] = `i${d}`;
  }
}

interface LoopFrame {
  readonly b: SourceBuilder;
  readonly params: Params;
  readonly ev: Evaluator;
  readonly idx: string;
  /** Index expression per input axis: i<d> for kept axes, '0' until the caller sets the others. */
  readonly start: string[];
  readonly outN: number;
}

/**
 * A kernel body with one thread per kept position of plan.input: `o` is its flat index, the body
 * returns after the bounds check, and start[d] names the thread's index on each kept axis.
 */
function threadPerOutput(plan: LoopPlan, kept: readonly number[]): LoopFrame {
  const xs = plan.input.shape;
  const outN = numelOf(kept.map((i) => xs[i]!));
  const idx = indexType(numelOf(xs), [plan.input]);
  const b = new SourceBuilder();
  const params = new Params();
  const ev = new Evaluator(b, params, idx);
  const start = xs.map(() => '0');
  b.emit(`${idx} o = (${idx})blockIdx.x * ${LOOP_BLOCK} + (${idx})threadIdx.x;`);
  b.emit(`if (o >= ${outN}) return;`);
  b.emit(`${idx} oo = o;`);
  unflatten(b, idx, 'oo', xs, kept, start);
  return { b, params, ev, idx, start, outN };
}

/** The kernel text and launch of a one-thread-per-output loop kernel. */
function loopLaunch(name: string, b: SourceBuilder, params: Params, outN: number, ev: Evaluator): LoopLaunch {
  const source =
    ev.globals.join('') +
    `extern "C" __global__ void __launch_bounds__(${LOOP_BLOCK}) ${name}(${params.decl()}) {\n` +
    b.text().split('\n').filter((l) => l).map((l) => `  ${l}`).join('\n') +
    '\n}\n';
  return { source, grid: Math.max(1, Math.ceil(outN / LOOP_BLOCK)), block: LOOP_BLOCK, params };
}

export function emitLoopReduce(name: string, plan: LoopPlan): LoopLaunch {
  if (plan.op === 'softmax' || plan.op === 'log_softmax') return emitLoopSoftmax(name, plan);
  if (plan.wide) return emitWideReduce(name, plan);
  const xs = plan.input.shape;
  const red = new Set(plan.axes);
  const kept = xs.map((_, i) => i).filter((i) => !red.has(i));
  const reduced = [...plan.axes];
  const R = numelOf(reduced.map((i) => xs[i]!));
  const { b, params, ev, idx, start, outN } = threadPerOutput(plan, kept);
  const init = { sum: '0.0', mean: '0.0', sumsq: '0.0', l1: '0.0', l2: '0.0', prod: '1.0', max: '-__longlong_as_double(0x7ff0000000000000LL)', min: '__longlong_as_double(0x7ff0000000000000LL)' }[plan.op as 'sum'];
  if (init === undefined) throw new Error(`loop reduction of ${plan.op}`);
  b.emit(`double acc = ${init};`);
  b.open(`for (${idx} q = 0; q < ${R}; q++)`);
  b.emit(`${idx} qq = q;`);
  unflatten(b, idx, 'qq', xs, reduced, start);
  ev.push();
  const v = `(double)(${ev.eval(plan.input, { key: 'q', start, lanes: 1 })[0]})`;
  ev.pop();
  const step: Record<string, string> = {
    sum: `acc += ${v};`, mean: `acc += ${v};`, sumsq: `{ const double t = ${v}; acc += t * t; }`, l2: `{ const double t = ${v}; acc += t * t; }`,
    l1: `acc += fabs(${v});`, prod: `acc *= ${v};`,
    max: `{ const double t = ${v}; if (t > acc || t != t) acc = t; }`, min: `{ const double t = ${v}; if (t < acc || t != t) acc = t; }`,
  };
  b.emit(step[plan.op]!);
  b.close();
  if (plan.op === 'mean') b.emit(`acc /= ${literal('f64', R)};`);
  if (plan.op === 'l2') b.emit('acc = sqrt(acc);');
  const out = params.write(plan.out);
  b.emit(`${out}[o] = ${toStorage(plan.out.dtype, `(${computeType(plan.out.dtype)})(acc)`)};`);
  return loopLaunch(name, b, params, outN, ev);
}

/** Softmax over one non-last axis: one thread per (outer, inner) position, three passes. */
function emitLoopSoftmax(name: string, plan: LoopPlan): LoopLaunch {
  const xs = plan.input.shape;
  const axis = plan.axes[0]!;
  const n = xs[axis]!;
  const kept = xs.map((_, i) => i).filter((i) => i !== axis);
  const { b, params, ev, idx, start, outN } = threadPerOutput(plan, kept);
  start[axis] = 'q';
  const pass = (key: string, body: (v: string) => void): void => {
    b.open(`for (${idx} q = 0; q < ${n}; q++)`);
    ev.push();
    body(`(float)(${ev.eval(plan.input, { key, start, lanes: 1 })[0]})`);
    ev.pop();
    b.close();
  };
  b.emit('float m = -__int_as_float(0x7f800000);');
  pass('a', (v) => b.emit(`m = fmaxf(m, ${v});`));
  b.emit('float acc = 0.0f;');
  pass('b', (v) => b.emit(`acc += expf(${v} - m);`));
  const out = params.write(plan.out);
  const strides = contiguousStrides(xs);
  const off = xs.map((_, d) => `(${idx})${strides[d]} * ${start[d]}`).join(' + ');
  pass('c', (v) => {
    const y = plan.op === 'softmax' ? `expf(${v} - m) / acc` : `${v} - m - logf(acc)`;
    b.emit(`${out}[${off}] = ${toStorage(plan.out.dtype, `(${computeType(plan.out.dtype)})(${y})`)};`);
  });
  return loopLaunch(name, b, params, outN, ev);
}

const WIDE_BLOCK = 1024;
/** Blocks the wide reduction aims to keep busy (two per SM of an H100). */
const WIDE_TARGET_BLOCKS = 264;

/** Blocks per row of a wide reduction: enough to fill the GPU, each with >= 4 chunks per thread. */
function wideSplit(rows: number, chunks: number): number {
  return Math.max(1, Math.min(Math.ceil(WIDE_TARGET_BLOCKS / rows), Math.floor(chunks / (WIDE_BLOCK * 4))));
}

/**
 * A float reduction over rows too long for registers (e.g. First Block Cache's mean |a - b| over
 * a whole activation): G blocks of 1024 threads per row, each thread striding over 16-byte chunks
 * with an fp32 accumulator, a block reduction, then the classic last-block pattern: each block
 * stores its partial in a module-scope __device__ array, and the block that finishes last (an
 * atomic counter per row) combines the G partials in index order (deterministic), writes the
 * output and resets the counter for the next launch (CUDA-graph safe; not for concurrent launches
 * of the same kernel on two streams).
 */
function emitWideReduce(name: string, plan: LoopPlan): LoopLaunch {
  const shape = plan.input.shape;
  const L = shape[shape.length - 1]!;
  const lead = shape.slice(0, -1);
  const rows = numelOf(lead);
  let V = plan.input.dtype === 'f32' ? 4 : plan.input.dtype === 'f16' || plan.input.dtype === 'bf16' ? 8 : 1;
  while (V > 1 && L % V !== 0) V >>= 1;
  const C = L / V;
  const G = wideSplit(rows, C);
  const idx = indexType(numelOf(shape), [plan.input]);
  const b = new SourceBuilder();
  const params = new Params();
  const ev = new Evaluator(b, params, idx);
  const isMax = plan.op === 'max';
  const isMin = plan.op === 'min';
  const init = isMax ? '-__int_as_float(0x7f800000)' : isMin ? '__int_as_float(0x7f800000)' : '0.0f';
  const combine = (a: string, x: string): string => (isMax ? `${a} = fmaxf(${a}, ${x});` : isMin ? `${a} = fminf(${a}, ${x});` : `${a} += ${x};`);
  const blockReduce = (v: string): string =>
    isMax ? `${v} = pdt_row_max<${WIDE_BLOCK}>(${v}, red);` : isMin ? `${v} = -pdt_row_max<${WIDE_BLOCK}>(-${v}, red);` : `${v} = pdt_row_sum<${WIDE_BLOCK}>(${v}, red);`;
  b.emit(`__shared__ float red[${WIDE_BLOCK / 32}];`);
  b.emit(G > 1 ? `const ${idx} row = (${idx})blockIdx.x / ${G};` : `const ${idx} row = (${idx})blockIdx.x;`);
  if (G > 1) b.emit(`const int part = blockIdx.x % ${G};`);
  if (lead.length) b.emit(`${idx} rr = row;`);
  const start: string[] = [];
  for (let d = lead.length - 1; d >= 0; d--) {
    b.emit(`const ${idx} i${d} = rr % ${lead[d]};`);
    b.emit(`rr /= ${lead[d]};`);
    start.unshift(`i${d}`);
  }
  b.emit(`float acc = ${init};`);
  b.emit('#pragma unroll 4');
  const first = G > 1 ? `(${idx})part * ${WIDE_BLOCK} + threadIdx.x` : 'threadIdx.x';
  b.open(`for (${idx} c = ${first}; c < ${C}; c += ${WIDE_BLOCK * G})`);
  b.emit(`const ${idx} j = c * ${V};`);
  ev.push();
  const lanes = ev.eval(plan.input, { key: 'c', start: [...start, 'j'], lanes: V });
  for (const l of lanes) {
    const x = `(float)(${l})`;
    if (plan.op === 'sumsq' || plan.op === 'l2') b.emit(`acc += ${x} * ${x};`);
    else if (plan.op === 'l1') b.emit(`acc += fabsf(${x});`);
    else b.emit(combine('acc', x));
  }
  ev.pop();
  b.close();
  b.emit(blockReduce('acc'));
  const out = params.write(plan.out);
  const finish = (v: string): string => {
    const y = plan.op === 'mean' ? `${v} * ${literal('f32', 1 / L)}` : plan.op === 'l2' ? `sqrtf(${v})` : v;
    return `${out}[row] = ${toStorage(plan.out.dtype, `(${computeType(plan.out.dtype)})(${y})`)};`;
  };
  let globals = '';
  if (G === 1) b.emit(`if (threadIdx.x == 0) ${finish('acc')}`);
  else {
    globals = `__device__ float ${name}_part[${rows * G}];\n__device__ unsigned int ${name}_count[${rows}];\n`;
    b.emit('__shared__ bool last;');
    b.open('if (threadIdx.x == 0)');
    b.emit(`${name}_part[row * ${G} + part] = acc;`);
    b.emit('__threadfence();');
    b.emit(`last = atomicAdd(&${name}_count[row], 1u) == ${G - 1}u;`);
    b.close();
    b.emit('__syncthreads();');
    b.emit('if (!last) return;');
    b.emit('__threadfence();');
    b.emit(`float tot = ${init};`);
    b.emit(`for (int i = threadIdx.x; i < ${G}; i += ${WIDE_BLOCK}) ${combine('tot', `__ldcg(&${name}_part[row * ${G} + i])`)}`);
    b.emit(blockReduce('tot'));
    b.open('if (threadIdx.x == 0)');
    b.emit(finish('tot'));
    b.emit(`${name}_count[row] = 0u;`);
    b.close();
  }
  const body = b.text();
  const source =
    ev.globals.join('') +
    globals +
    `extern "C" __global__ void __launch_bounds__(${WIDE_BLOCK}) ${name}(${params.decl()}) {\n` +
    body.split('\n').filter((l) => l).map((l) => `  ${l}`).join('\n') +
    '\n}\n';
  return { source, grid: rows * G, block: WIDE_BLOCK, params };
}
