/**
 * Einsum: the equation is parsed into one list of index ids per operand axis (letters, plus one
 * id per ellipsis axis, right-aligned across operands so ellipsis axes broadcast). Two-operand
 * equations without repeated or summed-alone indices run as a batched matmul (permute to
 * [batch, M, K] x [batch, K, N]); everything else (traces, diagonals, sums, 3+ operands) runs a
 * general odometer loop over all indices.
 */
import type { Dim } from '../graph';
import { Tensor, TensorData, numel, stridesOf } from '../tensor';
import type { InferCtx, OpRule, RuleCtx } from './rule';
import { need, sameDtype, tensorType } from './rule';
import { alloc, finish, fmt, gemm, permute, requireNumeric } from './nn-kernels';

/** Ids 0..51 are letters (a-z, A-Z); ids from ELL on are ellipsis axes, left to right. */
const ELL = 52;

interface Parsed {
  /** Per operand, the id of each axis. */
  readonly inputs: readonly (readonly number[])[];
  readonly output: readonly number[];
}

function letterId(ch: string): number {
  const c = ch.charCodeAt(0);
  if (c >= 97 && c <= 122) return c - 97;
  if (c >= 65 && c <= 90) return 26 + c - 65;
  return -1;
}

/** Splits one term into letters and an optional ellipsis position. */
function parseTerm(ctx: RuleCtx, term: string): { letters: number[]; ellAt: number } {
  const letters: number[] = [];
  let ellAt = -1;
  for (let i = 0; i < term.length; i++) {
    if (term.startsWith('...', i)) {
      if (ellAt >= 0) ctx.fail(`equation term '${term}' has more than one ellipsis`);
      ellAt = letters.length;
      i += 2;
      continue;
    }
    const id = letterId(term[i]!);
    if (id < 0) ctx.fail(`equation term '${term}' has an invalid character '${term[i]}' (expected letters, '...', ',' and '->')`);
    letters.push(id);
  }
  return { letters, ellAt };
}

function parseEquation(ctx: RuleCtx, equation: string, ranks: readonly number[]): Parsed {
  const eq = equation.replace(/\s+/g, '');
  const arrow = eq.indexOf('->');
  const lhs = arrow >= 0 ? eq.slice(0, arrow) : eq;
  const terms = lhs.split(',');
  if (terms.length !== ranks.length) {
    ctx.fail(`equation '${equation}' names ${terms.length} operands, got ${ranks.length} inputs`);
  }
  const parsed = terms.map((t) => parseTerm(ctx, t));
  let ellRank = 0;
  parsed.forEach((p, i) => {
    const r = ranks[i]!;
    if (p.ellAt < 0 && p.letters.length !== r) {
      ctx.fail(`equation term '${terms[i]}' has ${p.letters.length} indices but input ${i} has rank ${r}`);
    }
    if (p.ellAt >= 0 && p.letters.length > r) {
      ctx.fail(`equation term '${terms[i]}' has ${p.letters.length} indices but input ${i} has only rank ${r}`);
    }
    if (p.ellAt >= 0) ellRank = Math.max(ellRank, r - p.letters.length);
  });
  const inputs = parsed.map((p, i) => {
    if (p.ellAt < 0) return p.letters;
    const k = ranks[i]! - p.letters.length;
    const ell = Array.from({ length: k }, (_, t) => ELL + ellRank - k + t);
    return [...p.letters.slice(0, p.ellAt), ...ell, ...p.letters.slice(p.ellAt)];
  });
  const allEll = Array.from({ length: ellRank }, (_, t) => ELL + t);
  let output: number[];
  if (arrow >= 0) {
    const o = parseTerm(ctx, eq.slice(arrow + 2));
    const seen = new Set<number>();
    for (const id of o.letters) {
      if (seen.has(id)) ctx.fail(`output of '${equation}' repeats an index`);
      seen.add(id);
      if (!inputs.some((ids) => ids.includes(id))) ctx.fail(`output index of '${equation}' does not appear in any input`);
    }
    output = o.ellAt < 0 ? o.letters : [...o.letters.slice(0, o.ellAt), ...allEll, ...o.letters.slice(o.ellAt)];
    if (o.ellAt < 0 && ellRank > 0) ctx.fail(`equation '${equation}' uses '...' in the inputs but not in the explicit output`);
  } else {
    // Implicit output: ellipsis axes, then letters used exactly once, in alphabetical (ASCII) order.
    const count = new Map<number, number>();
    for (const ids of inputs) for (const id of ids) if (id < ELL) count.set(id, (count.get(id) ?? 0) + 1);
    const once = [...count].filter(([, c]) => c === 1).map(([id]) => id);
    const ascii = (id: number): number => (id < 26 ? 97 + id : 65 + id - 26);
    once.sort((x, y) => ascii(x) - ascii(y));
    output = [...allEll, ...once];
  }
  return { inputs, output };
}

/** Size of every id; ellipsis axes broadcast (1 against n), letters must agree. */
function idSizes(ctx: RuleCtx, p: Parsed, shapes: readonly (readonly Dim[])[]): Map<number, Dim> {
  const size = new Map<number, Dim>();
  p.inputs.forEach((ids, i) => {
    ids.forEach((id, ax) => {
      const d = shapes[i]![ax]!;
      const cur = size.get(id);
      if (cur === undefined || cur === 1) size.set(id, d);
      else if (d === 1) return;
      else if (typeof cur === 'number' && typeof d === 'number' && cur !== d) {
        ctx.fail(`index ${id >= ELL ? `'...' axis ${id - ELL}` : `'${String.fromCharCode(id < 26 ? 97 + id : 39 + id)}'`} has size ${cur} in one place and ${d} in input ${i} ${fmt(shapes[i]!)}`);
      } else if (typeof cur === 'string' && typeof d === 'number' && d !== 1) size.set(id, d);
    });
  });
  return size;
}

/** Advances an odometer over `dims`, moving every operand offset by its per-axis stride. */
function advance(idx: number[], dims: readonly number[], strides: readonly (readonly number[])[], off: number[]): void {
  for (let k = dims.length - 1; k >= 0; k--) {
    idx[k]!++;
    for (let q = 0; q < off.length; q++) off[q]! += strides[q]![k]!;
    if (idx[k]! < dims[k]!) return;
    for (let q = 0; q < off.length; q++) off[q]! -= strides[q]![k]! * dims[k]!;
    idx[k] = 0;
  }
}

/** General evaluation: for each output position, sum the operands' product over the reduced ids. */
function evalGeneral(ts: readonly Tensor[], p: Parsed, size: Map<number, number>, out: TensorData): void {
  const outIds = p.output;
  const redIds = [...size.keys()].filter((id) => !outIds.includes(id));
  // Step of operand q when id advances (summed over repeated axes: diagonals; 0 on broadcast axes).
  const stepsFor = (ids: readonly number[]): number[][] =>
    ts.map((t, q) => {
      const st = stridesOf(t.shape);
      return ids.map((id) => p.inputs[q]!.reduce((s, aid, ax) => (aid === id && t.shape[ax] !== 1 ? s + st[ax]! : s), 0));
    });
  const outDims = outIds.map((id) => size.get(id)!);
  const redDims = redIds.map((id) => size.get(id)!);
  const outSteps = stepsFor(outIds);
  const redSteps = stepsFor(redIds);
  const nOut = numel(outDims);
  const nRed = numel(redDims);
  const nOps = ts.length;
  const datas = ts.map((t) => t.data);
  const outIdx = new Array<number>(outIds.length).fill(0);
  const redIdx = new Array<number>(redIds.length).fill(0);
  const base = new Array<number>(nOps).fill(0);
  const cur = new Array<number>(nOps).fill(0);
  for (let o = 0; o < nOut; o++) {
    for (let q = 0; q < nOps; q++) cur[q] = base[q]!;
    let sum = 0;
    for (let r = 0; r < nRed; r++) {
      let prod = 1;
      for (let q = 0; q < nOps; q++) prod *= datas[q]![cur[q]!]!;
      sum += prod;
      advance(redIdx, redDims, redSteps, cur);
    }
    out[o] = sum;
    advance(outIdx, outDims, outSteps, base);
  }
}

/**
 * Batched-matmul plan for two operands: every id is batch (A, B, out), M (A, out), N (B, out) or
 * K (A, B, not out); undefined when the equation needs the general loop.
 */
function matmulPlan(ts: readonly Tensor[], p: Parsed, size: Map<number, number>) {
  if (ts.length !== 2) return undefined;
  const [ia, ib] = p.inputs as [readonly number[], readonly number[]];
  if (new Set(ia).size !== ia.length || new Set(ib).size !== ib.length) return undefined;
  // Every operand axis must have the full id size (no ellipsis broadcasting).
  for (let o = 0; o < 2; o++) if (p.inputs[o]!.some((id, ax) => ts[o]!.shape[ax] !== size.get(id))) return undefined;
  const out = p.output;
  const batch = out.filter((id) => ia.includes(id) && ib.includes(id));
  const m = out.filter((id) => ia.includes(id) && !ib.includes(id));
  const n = out.filter((id) => ib.includes(id) && !ia.includes(id));
  const k = ia.filter((id) => ib.includes(id) && !out.includes(id));
  if (batch.length + m.length + k.length !== ia.length || batch.length + n.length + k.length !== ib.length) return undefined;
  return { batch, m, n, k };
}

function evalMatmul(ts: readonly Tensor[], p: Parsed, size: Map<number, number>, plan: NonNullable<ReturnType<typeof matmulPlan>>, out: TensorData): void {
  const [A, B] = ts as [Tensor, Tensor];
  const ia = p.inputs[0]!;
  const ib = p.inputs[1]!;
  const sz = (ids: readonly number[]): number => numel(ids.map((id) => size.get(id)!));
  const nb = sz(plan.batch);
  const M = sz(plan.m);
  const N = sz(plan.n);
  const K = sz(plan.k);
  const a = permute(A.data, A.shape, [...plan.batch, ...plan.m, ...plan.k].map((id) => ia.indexOf(id)));
  const b = permute(B.data, B.shape, [...plan.batch, ...plan.k, ...plan.n].map((id) => ib.indexOf(id)));
  const res = out instanceof Float32Array ? new Float32Array(nb * M * N) : new Float64Array(nb * M * N);
  for (let t = 0; t < nb; t++) gemm(a, t * M * K, K, b, t * K * N, N, res, t * M * N, N, M, K, N);
  // res is laid out [batch..., m..., n...]; permute into the requested output order.
  const resIds = [...plan.batch, ...plan.m, ...plan.n];
  const resShape = resIds.map((id) => size.get(id)!);
  permute(res, resShape, p.output.map((id) => resIds.indexOf(id)), out);
}

function parseFor(ctx: RuleCtx, ranks: readonly number[]): Parsed {
  return parseEquation(ctx, ctx.attr.string('equation'), ranks);
}

const Einsum: OpRule = {
  doc: "Einsum(Inputs...) {equation}: numpy einsum with explicit ('->') or implicit output, repeated indices (diagonals) and '...' broadcasting.",
  infer(ctx: InferCtx) {
    const types = ctx.inputs.map((_, i) => need(ctx, ctx.inputs, i));
    if (types.length === 0) ctx.fail('needs at least one input');
    const dtype = sameDtype(ctx, types);
    requireNumeric(ctx, dtype, 'Inputs');
    const p = parseFor(ctx, types.map((t) => t.shape.length));
    const size = idSizes(ctx, p, types.map((t) => t.shape));
    return [tensorType(dtype, p.output.map((id) => size.get(id)!))];
  },
  run(ctx) {
    const ts = ctx.inputs.map((_, i) => need(ctx, ctx.inputs, i));
    const p = parseFor(ctx, ts.map((t) => t.rank));
    const size = idSizes(ctx, p, ts.map((t) => t.shape)) as Map<number, number>;
    const shape = p.output.map((id) => size.get(id)!);
    const dtype = ts[0]!.dtype;
    const out = alloc(dtype, shape);
    const plan = matmulPlan(ts, p, size);
    if (plan) evalMatmul(ts, p, size, plan, out);
    else evalGeneral(ts, p, size, out);
    return [finish(dtype, shape, out)];
  },
};

export const einsumRules = { Einsum } as const;
