/**
 * Numeric check of the fusion plan without a GPU: the planned kernels (sinks, row kernels with
 * their prologues/epilogues, loop reductions, aliases) are evaluated in JS, element by element,
 * exactly as the emitted code indexes them (leaf strides and offsets, selects, rope partners,
 * gathers, rows), and the fragment outputs are compared with the CPU interpreter on seeded random
 * inputs. Guards the view algebra, Concat/Split/Slice/Gather folding, norm merging and the
 * sink-to-kernel assignment. Tolerance: relative L2 <= 1e-5 for f32, 1e-2 for f16/bf16 (fused
 * chains round once per IR value, like the interpreter; row statistics are summed in another
 * order), exact for integers and bool.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { DType, Graph, Value } from '@paradit/ir';
import { Module, Tensor, interpret, isFloat, loadModel, roundTo, toIntegerDtype } from '@paradit/ir';
import { createPassContext, defaultPipeline, runPipeline } from '@paradit/passes';
import { erf } from '../../ir/src/ops/elementwise-unary';
import type { Expr } from '../src/kernels/expr';
import { numelOf } from '../src/kernels/expr';
import { Planner } from '../src/kernels/plan';
import type { LoopPlan } from '../src/kernels/plan';
import { assignGroups } from '../src/kernels/assign';
import type { RowPlan } from '../src/kernels/row-plan';
import { coverageFragments } from '../src/kernels/check-cases';
import { cutFragments } from '../src/kernels/fragments';
import { buildTinyDit, TINY_DIT } from '../../../tests/models/tiny-dit';
import { randomInputs as harnessInputs, relL2 } from '../../../tests/support/harness';
import { FIXTURES, HAVE_FIXTURES } from '../../../tests/fixtures';

type Fn = (a: number[], e: Extract<Expr, { kind: 'map' }>, ins: DType[]) => number;
const gelu = (e: Extract<Expr, { kind: 'map' }>, x: number): number =>
  (e.nodes[0]!.attrs['approximate']?.value ?? 'none') === 'tanh'
    ? 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)))
    : 0.5 * x * (1 + erf(x / Math.SQRT2));
const JS: Record<string, Fn> = {
  Add: ([a, b]) => a! + b!, Sub: ([a, b]) => a! - b!, Mul: ([a, b]) => a! * b!,
  Div: ([a, b], e) => (isFloat(e.dtype) ? a! / b! : b === 0 ? 0 : Math.trunc(a! / b!)),
  Mod: ([a, b]) => { const r = a! % b!; return r !== 0 && r < 0 !== b! < 0 ? r + b! : r; },
  Neg: ([a]) => -a!, Abs: ([a]) => Math.abs(a!), Exp: ([a]) => Math.exp(a!), Sqrt: ([a]) => Math.sqrt(a!),
  Tanh: ([a]) => Math.tanh(a!), Sigmoid: ([a]) => 1 / (1 + Math.exp(-a!)), Erf: ([a]) => erf(a!),
  Sin: ([a]) => Math.sin(a!), Cos: ([a]) => Math.cos(a!), Pow: ([a, b]) => Math.pow(a!, b!),
  Less: ([a, b]) => (a! < b! ? 1 : 0), Equal: ([a, b]) => (a === b ? 1 : 0), Where: ([c, a, b]) => (c ? a! : b!),
  Max: (a) => a.reduce((p, q) => (q > p || q !== q ? q : p)), Min: (a) => a.reduce((p, q) => (q < p || q !== q ? q : p)),
  Gelu: ([a], e) => gelu(e, a!), gelu: ([a], e) => gelu(e, a!), silu: ([a]) => a! / (1 + Math.exp(-a!)),
  modulate: ([x, sh, sc]) => x! * (1 + sc!) + sh!, gated_residual: ([x, g, y]) => x! + g! * y!,
  Cast: ([a], e) => (isFloat(e.dtype) ? a! : toIntegerDtype(e.dtype, a!)),
};

const round = (d: DType, x: number): number => (isFloat(d) ? roundTo(d, x) : toIntegerDtype(d, x));

class JsRun {
  readonly env = new Map<Value, Float64Array>();
  private readonly writers = new Map<Value, () => void>();
  private readonly rowCache = new Map<RowPlan, Float64Array>();

  constructor(
    private readonly g: Graph,
    inputs: readonly Tensor[],
  ) {
    g.inputs.forEach((v, i) => this.env.set(v, Float64Array.from(inputs[i]!.data)));
    const p = new Planner(g);
    p.run();
    const groups = assignGroups(p);
    for (const gr of groups) {
      if (gr.kind === 'loop') this.writers.set(gr.plan.out, () => this.loop(gr.plan));
      else if (gr.kind === 'scatter') throw new Error('scatter kernels are checked by indexed-kernels.test.ts (host run)');
      else {
        const sinks = gr.kind === 'row' ? [...gr.prologue, ...gr.epilogue] : gr.sinks;
        for (const s of sinks) {
          if (!s.target) {
            this.writers.set(s.value, () => this.env.set(s.value, this.whole(s.expr)));
            continue;
          }
          const t = s.target;
          const prev = this.writers.get(t.value);
          this.writers.set(t.value, () => {
            prev?.();
            const out = this.env.get(t.value) ?? new Float64Array(numelOf(t.value.shape as number[]));
            const vals = this.whole(s.expr);
            const shape = s.expr.shape;
            const idx = new Array<number>(shape.length).fill(0);
            for (let k = 0; k < vals.length; k++) {
              out[t.offset + t.strides.reduce((a, st, d) => a + st * idx[d]!, 0)] = vals[k]!;
              for (let d = shape.length - 1; d >= 0; d--) {
                if (++idx[d]! < shape[d]!) break;
                idx[d] = 0;
              }
            }
            this.env.set(t.value, out);
          });
        }
        if (gr.kind === 'row' && gr.plan.reduces) this.writers.set(gr.plan.outValue, () => this.env.set(gr.plan.outValue, this.reduceRows(gr.plan)));
      }
    }
    for (const a of p.aliases) {
      this.writers.set(a.value, () => {
        const base = this.buf(a.of);
        const n = numelOf(a.value.shape as number[]);
        const off = a.byteOffset / byteSize(a.of.dtype);
        this.env.set(a.value, base.slice(off, off + n));
      });
    }
  }

  buf(v: Value): Float64Array {
    let b = this.env.get(v);
    if (b) return b;
    if (v.constant) b = Float64Array.from(v.constant.tensor().data);
    else {
      const w = this.writers.get(v);
      if (!w) throw new Error(`nothing writes '${v.name}'`);
      w();
      b = this.env.get(v)!;
    }
    this.env.set(v, b);
    return b;
  }

  outputs(): Float64Array[] {
    return this.g.outputs.map((v) => this.buf(v));
  }

  private whole(e: Expr): Float64Array {
    const shape = e.shape;
    const n = numelOf(shape);
    const out = new Float64Array(n);
    const idx = new Array<number>(shape.length).fill(0);
    for (let k = 0; k < n; k++) {
      out[k] = this.at(e, idx);
      for (let d = shape.length - 1; d >= 0; d--) {
        if (++idx[d]! < shape[d]!) break;
        idx[d] = 0;
      }
    }
    return out;
  }

  at(e: Expr, idx: readonly number[]): number {
    switch (e.kind) {
      case 'leaf':
        return this.buf(e.value)[e.offset + e.strides.reduce((s, st, d) => s + st * idx[d]!, 0)]!;
      case 'const':
        return e.v;
      case 'map': {
        const f = JS[e.nodes[0]!.op];
        if (!f) throw new Error(`no JS semantics for ${e.nodes[0]!.op}`);
        return round(e.dtype, f(e.args.map((a) => this.at(a, idx)), e, e.args.map((a) => a.dtype)));
      }
      case 'select': {
        let p = 0;
        while (p + 1 < e.pieces.length && idx[e.axis]! >= e.starts[p + 1]!) p++;
        const j = [...idx];
        j[e.axis] = j[e.axis]! - e.starts[p]!;
        return this.at(e.pieces[p]!, j);
      }
      case 'rope': {
        const last = idx.length - 1;
        const H = e.shape[last]!;
        const jj = idx[last]!;
        const inter = e.style === 'interleaved';
        const partner = inter ? jj ^ 1 : jj < H / 2 ? jj + H / 2 : jj - H / 2;
        const lo = inter ? jj % 2 === 0 : jj < H / 2;
        const C = e.cos.shape[last]!;
        const t = C === H ? jj : inter ? jj >> 1 : jj % (H / 2);
        const ti = [...idx.slice(0, last), t];
        const x = this.at(e.x, idx);
        const xp = this.at(e.x, [...idx.slice(0, last), partner]);
        return round(e.dtype, x * this.at(e.cos, ti) + (lo ? -xp : xp) * this.at(e.sin, ti));
      }
      case 'gather': {
        const q = e.idx.shape.length;
        let g = this.at(e.idx, idx.slice(e.axis, e.axis + q));
        if (g < 0) g += e.x.shape[e.axis]!;
        return this.at(e.x, [...idx.slice(0, e.axis), g, ...idx.slice(e.axis + q)]);
      }
      case 'indexed':
        // Rendered C only (no JS mirror): host-run-kernels.test.ts runs those kernels compiled for the host.
        throw new Error(`indexed rule ${e.rule.name} has no JS evaluation here`);
      case 'row': {
        const out = this.rowOut(e.plan);
        const L = e.plan.L;
        const r = idx.slice(0, -1).reduce((s, d, k) => s * e.shape[k]! + d, 0);
        return out[r * L + idx[idx.length - 1]!]!;
      }
    }
  }

  private rowInput(plan: RowPlan, r: number): { lead: number[]; x: number[] } {
    const lead: number[] = [];
    let rr = r;
    for (let d = plan.shape.length - 2; d >= 0; d--) {
      lead.unshift(rr % plan.shape[d]!);
      rr = Math.floor(rr / plan.shape[d]!);
    }
    return { lead, x: Array.from({ length: plan.L }, (_, j) => this.at(plan.input, [...lead, j])) };
  }

  private rowOut(plan: RowPlan): Float64Array {
    const hit = this.rowCache.get(plan);
    if (hit) return hit;
    const out = new Float64Array(plan.rows * plan.L);
    for (let r = 0; r < plan.rows; r++) {
      const { lead, x } = this.rowInput(plan, r);
      const L = plan.L;
      const mean = plan.op === 'layer_norm' ? x.reduce((a, b) => a + b, 0) / L : 0;
      const m = Math.max(...x);
      const se = x.reduce((a, b) => a + Math.exp(b - m), 0);
      const inv = 1 / Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / L + plan.eps);
      x.forEach((v, j) => {
        let y: number;
        if (plan.op === 'softmax') y = Math.exp(v - m) / se;
        else if (plan.op === 'log_softmax') y = v - m - Math.log(se);
        else y = (v - mean) * inv;
        if (plan.weight) y *= this.at(plan.weight, [...lead, j]);
        if (plan.bias) y += this.at(plan.bias, [...lead, j]);
        out[r * L + j] = round(plan.outDtype, y);
      });
    }
    this.rowCache.set(plan, out);
    return out;
  }

  private reduceRows(plan: RowPlan): Float64Array {
    return Float64Array.from({ length: plan.rows }, (_, r) => round(plan.outDtype, fold(plan.op, this.rowInput(plan, r).x)));
  }

  private loop(plan: LoopPlan): void {
    const xs = plan.input.shape;
    if (plan.op === 'softmax' || plan.op === 'log_softmax') {
      const x = this.whole(plan.input);
      const ax = plan.axes[0]!;
      const n = xs[ax]!;
      const inner = numelOf(xs.slice(ax + 1));
      const out = new Float64Array(x.length);
      for (let o = 0; o < x.length / (n * inner); o++) {
        for (let i = 0; i < inner; i++) {
          const at = (q: number): number => o * n * inner + q * inner + i;
          let m = -Infinity;
          for (let q = 0; q < n; q++) m = Math.max(m, x[at(q)]!);
          let se = 0;
          for (let q = 0; q < n; q++) se += Math.exp(x[at(q)]! - m);
          for (let q = 0; q < n; q++) out[at(q)] = round(plan.out.dtype, plan.op === 'softmax' ? Math.exp(x[at(q)]! - m) / se : x[at(q)]! - m - Math.log(se));
        }
      }
      this.env.set(plan.out, out);
      return;
    }
    const kept = xs.map((_, i) => i).filter((i) => !plan.axes.includes(i));
    const outN = numelOf(kept.map((i) => xs[i]!));
    const R = numelOf(plan.axes.map((i) => xs[i]!));
    const out = new Float64Array(outN);
    for (let o = 0; o < outN; o++) {
      const idx = xs.map(() => 0);
      let oo = o;
      for (let k = kept.length - 1; k >= 0; k--) {
        idx[kept[k]!] = oo % xs[kept[k]!]!;
        oo = Math.floor(oo / xs[kept[k]!]!);
      }
      const vals: number[] = [];
      for (let q = 0; q < R; q++) {
        let qq = q;
        for (let k = plan.axes.length - 1; k >= 0; k--) {
          idx[plan.axes[k]!] = qq % xs[plan.axes[k]!]!;
          qq = Math.floor(qq / xs[plan.axes[k]!]!);
        }
        vals.push(this.at(plan.input, idx));
      }
      out[o] = round(plan.out.dtype, fold(plan.op, vals));
    }
    this.env.set(plan.out, out);
  }
}

function fold(op: string, x: number[]): number {
  const sum = (f: (v: number) => number): number => x.reduce((a, v) => a + f(v), 0);
  switch (op) {
    case 'sum': return sum((v) => v);
    case 'mean': return sum((v) => v) / x.length;
    case 'sumsq': return sum((v) => v * v);
    case 'l2': return Math.sqrt(sum((v) => v * v));
    case 'l1': return sum(Math.abs);
    case 'max': return Math.max(...x);
    case 'min': return Math.min(...x);
    case 'prod': return x.reduce((a, v) => a * v, 1);
    default: throw new Error(op);
  }
}

const byteSize = (d: DType): number => ({ f32: 4, f16: 2, bf16: 2, f64: 8, i64: 8, i32: 4, bool: 1, u8: 1 } as Record<string, number>)[d] ?? 4;

/** Integers in [1, 4): no zero divisors for Div/Mod. */
const randomInputs = (g: Graph, seed: number): Tensor[] => harnessInputs(g.inputs, seed, { intMin: 1, intCount: 3 });

const TOL: Partial<Record<DType, number>> = { f32: 1e-5, f64: 1e-9, f16: 1e-2, bf16: 1e-2 };

function check(g: Graph, seed: number, what: string): void {
  const inputs = randomInputs(g, seed);
  const want = interpret(new Module(g, { '': 18 }), inputs);
  const got = new JsRun(g, inputs).outputs();
  g.outputs.forEach((v, k) => {
    const rel = relL2(new Tensor('f64', want[k]!.shape, got[k]!), want[k]!); // JsRun computes in doubles
    const tol = TOL[v.dtype] ?? 0;
    if (!(rel <= tol)) throw new Error(`${what}: output ${k} ('${v.name}', ${v.dtype}[${v.shape.join(',')}]) relative L2 ${rel} > ${tol}`);
  });
}

const fused = (m: Module): Module => runPipeline(m, defaultPipeline(), createPassContext());

describe('planned kernels evaluated in JS match the interpreter', () => {
  test.each(coverageFragments().map((c) => [c.name, c.graph] as const))('%s', (name, g) => check(g, 5, name));

  test('tiny DiT fragments (with and without a text mask)', () => {
    for (const cfg of [TINY_DIT, { ...TINY_DIT, mask: true, seed: 3 }]) {
      cutFragments(fused(buildTinyDit(cfg)).graph).forEach((f, i) => check(f, 11 + i, `tiny fragment ${i}`));
    }
  });

  test('fragments of the small fixtures (FLUX, SD3, Wan, CogVideoX)', () => {
    if (!HAVE_FIXTURES) return console.log('skipped: fixtures absent');
    let n = 0;
    for (const d of fs.readdirSync(FIXTURES).sort()) {
      if (d === 'flux-dev-2x4' || !fs.existsSync(path.join(FIXTURES, d, 'model.onnx'))) continue;
      const m = fused(loadModel(path.join(FIXTURES, d), { randomWeights: { seed: 0 } }));
      cutFragments(m.graph).forEach((f, i) => {
        if (f.inputs.some((v) => v.shape.some((s) => typeof s !== 'number'))) return;
        check(f, 100 + i, `${d} fragment ${i} (${f.nodes.map((x) => x.op).join(',')})`);
        n++;
      });
    }
    expect(n).toBeGreaterThan(30);
  });
});
