/**
 * The per-op rule interface shared by every op table, the contexts the rules receive, and the
 * small helpers most rules need (attribute reading, broadcasting, axis normalization).
 */
import type { AttrValue, Attrs, Dim, Graph, TensorType } from '../graph';
import { tensorType } from '../graph';
import type { DType } from '../dtype';
import { Tensor } from '../tensor';
import { IrError } from '../errors';

/** The parts of a node a rule may look at (a real Node, or one being built). */
export interface NodeInfo {
  readonly op: string;
  readonly name: string;
  readonly attrs: Attrs;
}

export interface RuleCtx {
  readonly node: NodeInfo;
  /** Version of the node's domain opset (e.g. 18 for ai.onnx 18). */
  readonly opset: number;
  /** Number of outputs the node declares (some ops have optional outputs). */
  readonly numOutputs: number;
  readonly attr: AttrReader;
  /** Throws an IrError naming the node: "Reshape 'node_3': <message>". */
  fail(message: string): never;
}

export interface InferCtx extends RuleCtx {
  /** Input types; undefined for an omitted optional input. */
  readonly inputs: readonly (TensorType | undefined)[];
  /**
   * Input values known at compile time (constants and values folded from them), undefined when
   * unknown. Shape-like inputs (Reshape's shape, Slice's starts...) are read from here.
   */
  readonly values: readonly (Tensor | undefined)[];
}

export interface RunCtx extends RuleCtx {
  /** Input tensors; undefined for an omitted optional input. */
  readonly inputs: readonly (Tensor | undefined)[];
  /** Runs a subgraph (If branches) in the current environment and returns its outputs. */
  runSubgraph(g: Graph): Tensor[];
}

export interface OpRule {
  /** One line: semantics and layout. */
  readonly doc: string;
  /** Output types, one per declared output. Must throw (via ctx.fail) on invalid operands. */
  infer(ctx: InferCtx): TensorType[];
  /** Reference semantics: fp32 arithmetic, outputs rounded to their dtype. */
  run(ctx: RunCtx): Tensor[];
  /**
   * True for ops whose result depends on the rank running them (collectives, per-rank slices):
   * never folded at compile time; only the SPMD simulator (spmd.ts) runs them.
   */
  readonly rankDependent?: boolean;
  /**
   * Outputs known at compile time from the input types alone (Shape and Size of a statically
   * shaped tensor whose values are unknown); undefined when they are not. The builder tries it
   * before ordinary folding, which needs every input value.
   */
  fold?(ctx: InferCtx): Tensor[] | undefined;
}

export class AttrReader {
  constructor(
    private readonly attrs: Attrs,
    private readonly fail: (m: string) => never,
  ) {}

  has(name: string): boolean {
    return name in this.attrs;
  }

  private get(name: string, kind: AttrValue['kind']): AttrValue | undefined {
    const a = this.attrs[name];
    if (a === undefined) return undefined;
    if (a.kind !== kind) this.fail(`attribute '${name}' must be ${kind}, got ${a.kind}`);
    return a;
  }

  int(name: string, def?: number): number {
    const a = this.get(name, 'int');
    if (a) return a.value as number;
    if (def === undefined) this.fail(`missing required attribute '${name}' (int)`);
    return def;
  }

  float(name: string, def?: number): number {
    const a = this.attrs[name];
    if (a && a.kind === 'int') return a.value; // lenient: some exporters write 1 for 1.0
    const f = this.get(name, 'float');
    if (f) return f.value as number;
    if (def === undefined) this.fail(`missing required attribute '${name}' (float)`);
    return def;
  }

  string(name: string, def?: string): string {
    const a = this.get(name, 'string');
    if (a) return a.value as string;
    if (def === undefined) this.fail(`missing required attribute '${name}' (string)`);
    return def;
  }

  ints(name: string, def?: readonly number[]): readonly number[] {
    const a = this.get(name, 'ints');
    if (a) return a.value as readonly number[];
    if (def === undefined) this.fail(`missing required attribute '${name}' (ints)`);
    return def;
  }

  optInts(name: string): readonly number[] | undefined {
    const a = this.get(name, 'ints');
    return a ? (a.value as readonly number[]) : undefined;
  }

  floats(name: string, def?: readonly number[]): readonly number[] {
    const a = this.get(name, 'floats');
    if (a) return a.value as readonly number[];
    if (def === undefined) this.fail(`missing required attribute '${name}' (floats)`);
    return def;
  }

  tensor(name: string): Tensor | undefined {
    const a = this.get(name, 'tensor');
    return a ? (a.value as Tensor) : undefined;
  }

  graph(name: string): Graph {
    const a = this.get(name, 'graph');
    if (!a) this.fail(`missing required attribute '${name}' (graph)`);
    return a.value as Graph;
  }
}

export function makeFail(node: NodeInfo): (m: string) => never {
  return (m: string): never => {
    throw new IrError('E_OP', `${node.op}${node.name ? ` '${node.name}'` : ''}: ${m}`, node.name);
  };
}

// ---------------------------------------------------------------------------------------------
// Shared helpers for rules.

/** Requires input i to be present. */
export function need<T>(ctx: RuleCtx, xs: readonly (T | undefined)[], i: number): T {
  const x = xs[i];
  if (x === undefined) ctx.fail(`input ${i} is required but missing`);
  return x;
}

/** Normalizes a possibly negative axis against a rank, failing when out of range. */
export function normAxis(ctx: RuleCtx, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) ctx.fail(`axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/** Numpy-style broadcast of several shapes; symbolic dims broadcast against 1 or themselves. */
export function broadcastShapes(ctx: RuleCtx, shapes: readonly (readonly Dim[])[]): Dim[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: Dim[] = new Array<Dim>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const a = out[o]!;
      const b = s[i]!;
      if (a === 1) out[o] = b;
      else if (b === 1 || a === b) continue;
      else if (typeof a === 'string' || typeof b === 'string') out[o] = typeof a === 'number' ? a : b;
      else ctx.fail(`shapes ${shapes.map((x) => `[${x.join(',')}]`).join(' and ')} cannot be broadcast together`);
    }
  }
  return out;
}

/** Requires a compile-time value for input i (a shape, axes, ...) and returns it as numbers. */
export function constInts(ctx: InferCtx, i: number, what: string): number[] | undefined {
  const v = ctx.values[i];
  if (v === undefined) {
    if (ctx.inputs[i] === undefined) return undefined;
    ctx.fail(`input ${i} (${what}) must be known at compile time (a constant or computed from shapes)`);
  }
  return v.toArray();
}

/** Requires all given inputs to have the same dtype; returns it. */
export function sameDtype(ctx: RuleCtx, types: readonly (TensorType | undefined)[]): DType {
  let d: DType | undefined;
  for (const t of types) {
    if (!t) continue;
    if (d === undefined) d = t.dtype;
    else if (t.dtype !== d) ctx.fail(`operand dtypes differ: expected ${d}, got ${t.dtype}`);
  }
  if (d === undefined) ctx.fail('no operands');
  return d;
}

export { tensorType };
