/**
 * Rows-parallel (spatial) sharding of a convolutional decoder, step 1 of analyze -> plan -> apply:
 * the plan. Each rank of a world of W owns a contiguous band of H/W image rows of every NCHW
 * activation; this module says, for each op that touches rows, what the band needs from outside:
 *
 *   Conv k/s/d, pads (pt, pb)   halo rows from the neighbours: top pt, bottom max(0, d(k-1)-pt-s+1)
 *                               (input band [r*hi, (r+1)*hi), output band [r*ho, (r+1)*ho), hi = s*ho)
 *   Resize nearest x u          none: output row j reads input row floor(j/u), inside the band
 *   InstanceNormalization       (GroupNorm's export) per-(n, group) sum and sum of squares,
 *                               all-reduced in fp32: 2*B*G floats
 *   attention over H*W tokens   the band is a contiguous token chunk; K and V of the other W-1
 *                               ranks are gathered: (W-1)/W * Skv * Nkv * (H + Hv) * B elements
 *
 * Volumes are what one rank receives, per rank (edge ranks have one neighbour). The plan is a
 * printable object (formatRowsPlan) so it can be tested against a hand count before any rewrite
 * exists; see docs/vae.md for the exactness argument.
 *
 * Requires: an imported (or default-pipeline) module with static shapes, Conv and Resize on NCHW.
 * Ensures: nothing changes; throws IrError E_INPUT naming the node when a band cannot be formed
 * (rows not divisible by W, a halo larger than a band, a non-nearest Resize).
 */
import { IrError, byteSize } from '@paradit/ir';
import type { DType, Module, Node, Value } from '@paradit/ir';

export type RowsStepKind = 'conv-halo' | 'upsample' | 'norm-all-reduce' | 'attention-gather';

export interface RowsStep {
  readonly kind: RowsStepKind;
  /** The node's label, `Conv '/decoder/conv_in/Conv'`. */
  readonly node: string;
  /** The ONNX node name and op, `/decoder/conv_in/Conv` and `Conv`. */
  readonly name: string;
  readonly op: string;
  /** Global rows of the node's (first) input. */
  readonly rows: number;
  /** Rows of that input each rank owns. */
  readonly rowsPerRank: number;
  /** Conv only: rows needed from the rank above and from the rank below. */
  readonly haloTop: number;
  readonly haloBottom: number;
  /** Conv only: halo rows each rank receives (edge ranks one side; 0 for other steps). */
  readonly haloRowsByRank: readonly number[];
  /** Bytes each rank receives for this step (halo rows, gathered K/V, or fp32 statistics). */
  readonly bytesByRank: readonly number[];
}

export interface RowsParallelPlan {
  readonly world: number;
  /** Activation dtype the halos and gathered K/V travel in (statistics are always fp32). */
  readonly dtype: DType;
  readonly steps: readonly RowsStep[];
  /** Sums over steps, per rank. */
  readonly haloBytesByRank: readonly number[];
  readonly allReduceBytesByRank: readonly number[];
  readonly gatherBytesByRank: readonly number[];
}

function fail(n: Node, msg: string): never {
  throw new IrError('E_INPUT', `rows-parallel: ${n.label}: ${msg}`, n.name);
}

function staticShape(n: Node, v: Value | null, what: string): number[] {
  if (!v) fail(n, `${what} is missing`);
  const s = v.type.shape;
  if (!s.every((d): d is number => typeof d === 'number')) fail(n, `${what} has a symbolic shape [${s.join(', ')}]; rows-parallel needs static shapes`);
  return [...s];
}

function ints(n: Node, key: string, dflt: readonly number[]): readonly number[] {
  const a = n.attrs[key];
  if (a === undefined) return dflt;
  if (a.kind !== 'ints') fail(n, `attribute ${key} should be ints, got ${a.kind}`);
  return a.value;
}

/** Per rank: `edge` for the first and last rank (one neighbour), `interior` for the others. */
function byRank(world: number, first: number, last: number, interior: number): number[] {
  if (world === 1) return [0];
  return Array.from({ length: world }, (_, r) => (r === 0 ? first : r === world - 1 ? last : interior));
}

function band(n: Node, rows: number, world: number): number {
  if (rows % world !== 0) fail(n, `${rows} rows are not divisible by rows-parallel degree ${world}; use a degree that divides ${rows}`);
  return rows / world;
}

function convStep(n: Node, world: number, bytes: number): RowsStep {
  const x = staticShape(n, n.inputs[0] ?? null, 'input X');
  const y = staticShape(n, n.outputs[0] ?? null, 'output Y');
  if (x.length !== 4) fail(n, `expected a 2-D convolution on NCHW, got an input of rank ${x.length}`);
  const autoPad = n.attrs.auto_pad;
  if (autoPad && autoPad.kind === 'string' && autoPad.value !== 'NOTSET') fail(n, `auto_pad ${autoPad.value} is not supported; export with explicit pads`);
  const [B, C, H, W] = x as [number, number, number, number];
  const k = ints(n, 'kernel_shape', [])[0] ?? staticShape(n, n.inputs[1] ?? null, 'weight W')[2]!;
  const s = ints(n, 'strides', [1, 1])[0]!;
  const d = ints(n, 'dilations', [1, 1])[0]!;
  const pt = ints(n, 'pads', [0, 0, 0, 0])[0]!;
  const Ho = y[2]!;
  if (H !== Ho * s) fail(n, `input rows ${H} are not stride ${s} x output rows ${Ho}, so the bands of input and output do not line up`);
  const hi = band(n, H, world);
  const top = pt;
  const bottom = Math.max(0, d * (k - 1) - pt - s + 1);
  if (world > 1 && Math.max(top, bottom) > hi) {
    fail(n, `a halo of ${Math.max(top, bottom)} rows is larger than a band of ${hi} rows at degree ${world}; use a smaller degree`);
  }
  const row = B * C * W * bytes;
  return { kind: 'conv-halo', node: n.label, name: n.name, op: n.op, rows: H, rowsPerRank: hi, haloTop: top, haloBottom: bottom, haloRowsByRank: byRank(world, bottom, top, top + bottom), bytesByRank: byRank(world, bottom * row, top * row, (top + bottom) * row) };
}

function resizeStep(n: Node, world: number): RowsStep {
  const mode = n.attrs.mode;
  if (mode && mode.kind === 'string' && mode.value !== 'nearest') fail(n, `mode '${mode.value}' reads rows across band edges; only nearest upsampling is supported`);
  const x = staticShape(n, n.inputs[0] ?? null, 'input X');
  const y = staticShape(n, n.outputs[0] ?? null, 'output Y');
  if (x.length !== 4 || y[2]! % x[2]! !== 0) fail(n, `expected an integer upsampling of NCHW rows, got [${x.join(', ')}] -> [${y.join(', ')}]`);
  return { kind: 'upsample', node: n.label, name: n.name, op: n.op, rows: x[2]!, rowsPerRank: band(n, x[2]!, world), haloTop: 0, haloBottom: 0, haloRowsByRank: byRank(world, 0, 0, 0), bytesByRank: byRank(world, 0, 0, 0) };
}

/** GroupNorm as exported: Reshape(NCHW -> [B, G, C/G*H*W]) -> InstanceNormalization. */
function normStep(n: Node, world: number, producers: ReadonlyMap<Value, Node>): RowsStep {
  const x = staticShape(n, n.inputs[0] ?? null, 'input X');
  const r = n.inputs[0] ? producers.get(n.inputs[0]) : undefined;
  const src = r && r.op === 'Reshape' ? staticShape(r, r.inputs[0] ?? null, 'input data') : undefined;
  if (!src || src.length !== 4) fail(n, 'expected its input to be a Reshape of an NCHW activation (GroupNorm as the exporters write it)');
  const [B, G] = x as [number, number];
  const stats = 2 * B * G * 4; // sum and sum of squares per (n, group), fp32
  return { kind: 'norm-all-reduce', node: n.label, name: n.name, op: n.op, rows: src[2]!, rowsPerRank: band(n, src[2]!, world), haloTop: 0, haloBottom: 0, haloRowsByRank: byRank(world, 0, 0, 0), bytesByRank: byRank(world, stats, stats, stats) };
}

function attentionStep(n: Node, world: number, bytes: number): RowsStep {
  const q = staticShape(n, n.inputs[0] ?? null, 'q');
  const k = staticShape(n, n.inputs[1] ?? null, 'k');
  const v = staticShape(n, n.inputs[2] ?? null, 'v');
  const [B, Nkv, Skv, H] = k as [number, number, number, number];
  const per = band(n, q[2]!, world);
  band(n, Skv, world);
  const other = ((world - 1) * Skv) / world;
  const kv = other * B * Nkv * (H + v[3]!) * bytes;
  return { kind: 'attention-gather', node: n.label, name: n.name, op: n.op, rows: q[2]!, rowsPerRank: per, haloTop: 0, haloBottom: 0, haloRowsByRank: byRank(world, 0, 0, 0), bytesByRank: byRank(world, kv, kv, kv) };
}

function sum(steps: readonly RowsStep[], kind: RowsStepKind, world: number): number[] {
  const out = new Array<number>(world).fill(0);
  for (const s of steps) if (s.kind === kind) s.bytesByRank.forEach((b, r) => (out[r]! += b));
  return out;
}

/** The rows-parallel plan of `m` at degree `world`, with activations travelling as `dtype`. */
export function planRowsParallel(m: Module, world: number, dtype: DType = 'f32'): RowsParallelPlan {
  if (!Number.isInteger(world) || world < 1) throw new IrError('E_INPUT', `rows-parallel: degree must be a positive integer, got ${world}`);
  const bytes = byteSize(dtype);
  const producers = new Map<Value, Node>();
  for (const n of m.graph.nodes) for (const o of n.outputs) producers.set(o, n);
  const steps: RowsStep[] = [];
  for (const n of m.graph.nodes) {
    if (n.op === 'Conv') steps.push(convStep(n, world, bytes));
    else if (n.op === 'Resize') steps.push(resizeStep(n, world));
    else if (n.op === 'InstanceNormalization') steps.push(normStep(n, world, producers));
    else if (n.op === 'attention') steps.push(attentionStep(n, world, bytes));
    else if (n.op === 'GroupNormalization' || n.op === 'ConvTranspose' || n.op === 'MaxPool' || n.op === 'AveragePool') {
      fail(n, 'this op has no rows-parallel rule yet; decode without --rows-parallel');
    }
  }
  return {
    world,
    dtype,
    steps,
    haloBytesByRank: sum(steps, 'conv-halo', world),
    allReduceBytesByRank: sum(steps, 'norm-all-reduce', world),
    gatherBytesByRank: sum(steps, 'attention-gather', world),
  };
}

/** One line per step: `conv-halo Conv 'x' rows 8 (4/rank) halo 1+1 bytes 512,1024,512`. */
export function formatRowsPlan(p: RowsParallelPlan): string {
  const lines = [`rows-parallel ${p.world} (${p.dtype})`];
  for (const s of p.steps) {
    const halo = s.kind === 'conv-halo' ? ` halo ${s.haloTop}+${s.haloBottom}` : '';
    lines.push(`  ${s.kind} ${s.node} rows ${s.rows} (${s.rowsPerRank}/rank)${halo} bytes ${s.bytesByRank.join(',')}`);
  }
  lines.push(`  total halo ${p.haloBytesByRank.join(',')} all-reduce ${p.allReduceBytesByRank.join(',')} gather ${p.gatherBytesByRank.join(',')}`);
  return lines.join('\n');
}
