/**
 * Evaluates lazy expressions into straight-line CUDA C++ at "chunks": V consecutive positions
 * along the domain's last axis starting at a multi-index given as C expressions. Leaves become
 * 16-byte vector loads where the view allows (unit stride on the last axis, aligned offset and
 * strides), else scalar loads; every computed value is rounded to its IR dtype like the
 * interpreter does. Results are memoized per (expression, chunk) inside the current C scope.
 */
import type { Value } from '@paradit/ir';
import type { Expr, IndexedExpr, LeafExpr } from './expr';
import type { IndexCtx } from './indexed';
import type { RowPlan } from './row-plan';
import type { StoreView } from './plan';
import { computeType, fromStorage, isVectorDtype, literal, roundTo, storageType, toStorage } from './c-types';
import { CodegenError } from './codegen-error';
import type { SourceBuilder } from './source-builder';

export interface Chunk {
  /** Unique among chunks of a kernel (memo key). */
  readonly key: string;
  /** C expressions of the multi-index of lane 0, one per domain dim. */
  readonly start: readonly string[];
  readonly lanes: number;
  /** Row kernels: which register slot holds this chunk's row values. */
  readonly slot?: number;
  /** Row kernels: the chunk holding the rotate_half partner (same thread). */
  readonly partner?: Chunk;
}

/** Kernel parameters: one pointer per buffer read or written, in first-use order. */
export class Params {
  readonly reads: Value[] = [];
  readonly writes: Value[] = [];
  private readonly names = new Map<Value, string>();

  read(v: Value): string {
    return this.name(v, false);
  }

  write(v: Value): string {
    return this.name(v, true);
  }

  private name(v: Value, w: boolean): string {
    let n = this.names.get(v);
    if (!n) {
      n = `${w ? 'out' : 'in'}${this.names.size}`;
      this.names.set(v, n);
      (w ? this.writes : this.reads).push(v);
    } else if (w && !this.writes.includes(v)) this.writes.push(v);
    return n;
  }

  /** The C parameter list (reads const). */
  decl(): string {
    const all = [...this.reads.filter((v) => !this.writes.includes(v)), ...this.writes];
    return all.map((v) => `${this.writes.includes(v) ? '' : 'const '}${storageType(v.dtype)}* __restrict__ ${this.names.get(v)}`).join(', ');
  }

  ordered(): Value[] {
    return [...this.reads.filter((v) => !this.writes.includes(v)), ...this.writes];
  }
}

type RowLane = (plan: RowPlan, slot: number, lane: number) => string;

export class Evaluator {
  private readonly scopes: Map<string, string[]>[] = [new Map()];
  /** Module-scope declarations the kernel needs (constant tables of indexed rules), each guarded. */
  readonly globals: string[] = [];

  constructor(
    readonly b: SourceBuilder,
    readonly params: Params,
    readonly idx: string,
    private readonly rowLane?: RowLane,
  ) {}

  push(): void {
    this.scopes.push(new Map());
  }

  pop(): void {
    this.scopes.pop();
  }

  eval(e: Expr, ch: Chunk): string[] {
    const key = `${e.id}@${ch.key}`;
    for (let i = this.scopes.length - 1; i >= 0; i--) {
      const hit = this.scopes[i]!.get(key);
      if (hit) return hit;
    }
    const out = this.compute(e, ch);
    this.scopes[this.scopes.length - 1]!.set(key, out);
    return out;
  }

  private compute(e: Expr, ch: Chunk): string[] {
    const b = this.b;
    const ct = computeType(e.dtype);
    switch (e.kind) {
      case 'leaf':
        return this.load(e, ch);
      case 'const':
        return new Array<string>(ch.lanes).fill(literal(e.dtype, e.v));
      case 'map': {
        const args = e.args.map((a) => this.eval(a, ch));
        return Array.from({ length: ch.lanes }, (_, v) => {
          const t = b.tmp();
          b.emit(`const ${ct} ${t} = ${roundTo(e.dtype, e.op.emit(args.map((a) => a[v]!)))};`);
          return t;
        });
      }
      case 'select': {
        const t = b.tmp('s');
        b.emit(`${ct} ${t}[${ch.lanes}];`);
        const c = ch.start[e.axis]!;
        e.pieces.forEach((p, i) => {
          const last = i === e.pieces.length - 1;
          const next = e.starts[i + 1];
          b.open(i === 0 ? (last ? '' : `if (${c} < ${next})`) : last ? 'else' : `else if (${c} < ${next})`);
          this.push();
          const start = [...ch.start];
          start[e.axis] = e.starts[i] ? `(${c} - ${e.starts[i]})` : c;
          const lanes = this.eval(p, { key: `${ch.key}|s${e.id}.${i}`, start, lanes: ch.lanes, ...(ch.slot !== undefined ? { slot: ch.slot } : {}) });
          lanes.forEach((l, v) => b.emit(`${t}[${v}] = ${l};`));
          this.pop();
          b.close();
        });
        return Array.from({ length: ch.lanes }, (_, v) => `${t}[${v}]`);
      }
      case 'rope':
        return this.rope(e, ch);
      case 'gather': {
        if (ch.lanes > 1 && e.axis + e.idx.shape.length === e.shape.length) return this.perLane(e, ch);
        const q = e.idx.shape.length;
        const iv = this.eval(e.idx, { key: `${ch.key}|gi${e.id}`, start: ch.start.slice(e.axis, e.axis + q), lanes: 1 })[0]!;
        const g = b.tmp('g');
        const size = e.x.shape[e.axis]!;
        b.emit(`${this.idx} ${g} = (${this.idx})(${iv});`);
        b.emit(`if (${g} < 0) ${g} += ${size};`);
        const start = [...ch.start.slice(0, e.axis), g, ...ch.start.slice(e.axis + q)];
        return this.eval(e.x, { key: `${ch.key}|g${e.id}`, start, lanes: ch.lanes });
      }
      case 'indexed': {
        if (ch.lanes > 1) return this.perLane(e, ch);
        const t = b.tmp('x');
        const v = e.rule.emit(this.indexCtx(e, ch), ch.start, e);
        b.emit(`const ${ct} ${t} = ${roundTo(e.dtype, v)};`);
        return [t];
      }
      case 'row': {
        if (ch.slot === undefined || !this.rowLane) throw new CodegenError(`internal: a row value is read outside its row kernel`);
        return Array.from({ length: ch.lanes }, (_, v) => this.rowLane!(e.plan, ch.slot!, v));
      }
    }
  }

  /** What an indexed rule sees: reads of its operands at computed positions, scoped blocks. */
  private indexCtx(e: IndexedExpr, ch: Chunk): IndexCtx {
    const b = this.b;
    let block = 0;
    const scoped = (head: string, body: () => void): void => {
      b.open(head);
      this.push();
      body();
      this.pop();
      b.close();
    };
    return {
      idx: this.idx,
      emit: (line) => b.emit(line),
      tmp: (prefix) => b.tmp(prefix),
      read: (k, at) => {
        const arg = e.args[k];
        if (!arg) throw new CodegenError(`internal: indexed rule ${e.rule.name} reads operand ${k} of ${e.args.length}`);
        return this.eval(arg, { key: `${ch.key}|x${e.id}.${k}[${at.join(',')}]#${block}`, start: at, lanes: 1 })[0]!;
      },
      loop: (n, body) => {
        const v = b.tmp('q');
        block++;
        scoped(`for (${this.idx} ${v} = 0; ${v} < ${n}; ${v}++)`, () => body(v));
      },
      branch: (cond, then, other) => {
        block++;
        scoped(`if (${cond})`, then);
        if (other) {
          block++;
          scoped('else', other);
        }
      },
      global: (decl) => {
        if (!this.globals.includes(decl)) this.globals.push(decl);
      },
    };
  }

  /** Evaluates each lane as its own 1-lane chunk (expressions that cannot vectorize). */
  private perLane(e: Expr, ch: Chunk): string[] {
    const last = ch.start.length - 1;
    return Array.from({ length: ch.lanes }, (_, v) => {
      const start = [...ch.start];
      start[last] = `(${ch.start[last]} + ${v})`;
      return this.eval(e, { key: `${ch.key}|l${v}`, start, lanes: 1 })[0]!;
    });
  }

  private rope(e: Extract<Expr, { kind: 'rope' }>, ch: Chunk): string[] {
    const b = this.b;
    const last = e.shape.length - 1;
    const H = e.shape[last]!;
    const half = H / 2;
    const j = ch.start[last]!;
    const withLast = (s: string): string[] => [...ch.start.slice(0, last), s];
    const x = this.eval(e.x, ch);
    let xp: string[];
    let lo: (v: number) => string;
    if (e.style === 'interleaved') {
      if (ch.lanes > 1) xp = x.map((_, v) => x[v ^ 1]!);
      else xp = this.eval(e.x, { key: `${ch.key}|ri`, start: withLast(`(${j} ^ 1)`), lanes: 1 });
      lo = (v) => (ch.lanes > 1 ? (v % 2 === 0 ? 'true' : 'false') : `((${j} & 1) == 0)`);
    } else {
      const pc = ch.partner ?? { key: `${ch.key}|rh`, start: withLast(`(${j} < ${half} ? ${j} + ${half} : ${j} - ${half})`), lanes: ch.lanes };
      xp = this.eval(e.x, pc);
      lo = () => `(${j} < ${half})`;
    }
    const table = (t: Expr, tag: string): string[] => {
      const C = t.shape[last]!;
      if (C === H) return this.eval(t, { key: `${ch.key}|${tag}`, start: ch.start, lanes: ch.lanes });
      if (e.style === 'interleaved') {
        const n = Math.max(1, ch.lanes / 2);
        const got = this.eval(t, { key: `${ch.key}|${tag}`, start: withLast(`(${j} >> 1)`), lanes: n });
        return Array.from({ length: ch.lanes }, (_, v) => got[ch.lanes > 1 ? v >> 1 : 0]!);
      }
      return this.eval(t, { key: `${ch.key}|${tag}`, start: withLast(`(${j} < ${half} ? ${j} : ${j} - ${half})`), lanes: ch.lanes });
    };
    const cos = table(e.cos, 'rc');
    const sin = table(e.sin, 'rs');
    const ct = computeType(e.dtype);
    return x.map((xv, v) => {
      const t = b.tmp('r');
      b.emit(`const ${ct} ${t} = ${roundTo(e.dtype, `${xv} * ${cos[v]} + (${lo(v)} ? -${xp[v]} : ${xp[v]}) * ${sin[v]}`)};`);
      return t;
    });
  }

  private offset(strides: readonly number[], offset: number, start: readonly string[]): string {
    const terms: string[] = [];
    strides.forEach((s, d) => {
      if (s === 0) return;
      terms.push(s === 1 ? `${start[d]}` : `(${this.idx})${s} * ${start[d]}`);
    });
    if (offset !== 0 || terms.length === 0) terms.push(`(${this.idx})${offset}`);
    return terms.join(' + ');
  }

  private load(e: LeafExpr, ch: Chunk): string[] {
    const b = this.b;
    const p = this.params.read(e.value);
    const off = this.offset(e.strides, e.offset, ch.start);
    const st = storageType(e.dtype);
    const ct = computeType(e.dtype);
    const n = ch.lanes;
    const sl = e.strides.length ? e.strides[e.strides.length - 1]! : 0;
    if (n === 1 || sl === 0) {
      const t = b.tmp('v');
      b.emit(`const ${ct} ${t} = ${fromStorage(e.dtype, `${p}[${off}]`)};`);
      return new Array<string>(n).fill(t);
    }
    const aligned = e.offset % n === 0 && e.strides.every((s, d) => d === e.strides.length - 1 || s % n === 0);
    if (sl === 1 && aligned && isVectorDtype(e.dtype)) {
      const t = b.tmp('v');
      b.emit(`float ${t}[${n}];`);
      b.emit(`pdt_ldv<${st}, ${n}>(${p} + ${off}, ${t});`);
      return Array.from({ length: n }, (_, v) => `${t}[${v}]`);
    }
    const base = b.tmp('o');
    b.emit(`const ${this.idx} ${base} = ${off};`);
    return Array.from({ length: n }, (_, v) => {
      const t = b.tmp('v');
      b.emit(`const ${ct} ${t} = ${fromStorage(e.dtype, `${p}[${base} + ${v * sl}]`)};`);
      return t;
    });
  }

  /** Stores lanes at chunk ch through a store view (vectorized where the view allows). */
  store(t: StoreView, ch: Chunk, lanes: readonly string[]): void {
    const b = this.b;
    const v = t.value;
    const p = this.params.write(v);
    const off = this.offset(t.strides, t.offset, ch.start);
    const n = lanes.length;
    const r = t.strides.length;
    const sl = r ? t.strides[r - 1]! : 1;
    const aligned = t.offset % n === 0 && t.strides.every((s, d) => d === r - 1 || s % n === 0);
    if (n > 1 && sl === 1 && aligned && isVectorDtype(v.dtype)) {
      const w = b.tmp('w');
      b.emit(`const float ${w}[${n}] = {${lanes.join(', ')}};`);
      b.emit(`pdt_stv<${storageType(v.dtype)}, ${n}>(${p} + ${off}, ${w});`);
      return;
    }
    lanes.forEach((l, k) => b.emit(`${p}[${off}${k ? ` + ${k * sl}` : ''}] = ${toStorage(v.dtype, `(${computeType(v.dtype)})(${l})`)};`));
  }
}
