/**
 * The IR verifier (well-formedness check run before and after every pass in tests and debug
 * runs). It reports every problem it finds, not just the first:
 *
 * - SSA: each value is defined once in the whole module (graph input or node output);
 * - scoping and order: a node reads constants, values defined earlier in its graph, or values of
 *   an enclosing graph defined before the node that owns the subgraph; a use of a value defined
 *   later in the same graph is a topological-order error, one defined nowhere visible a dangling
 *   input; graph outputs must be defined;
 * - every op is known, and every node's output types equal what its op rule infers from its
 *   input types, with compile-time values from constants (replay.ts: the builder's own InferCtx
 *   and folding);
 * - constants' value types agree with their data's type;
 * - placement rules (verify-placement.ts).
 *
 * `diagnoseModule` returns the problems; `verifyModule` throws IrError('E_VERIFY') listing all.
 */
import type { Graph, Module, Node, TensorType, Value } from './graph';
import { IrError } from './errors';
import { isOpKind } from './ops';
import { TypeReplay } from './replay';
import { formatTensorType } from './text-format';
import { DEFAULT_PLACEMENT_RULES } from './verify-placement';
import type { PlacementRule } from './verify-placement';
import { carriesPlacements, spmdPlacementRule } from './verify-spmd-rule';

type VerifyCode =
  | 'redefined' // a value defined twice
  | 'not-topological' // a value used before the node that defines it
  | 'undefined-value' // a dangling input: defined nowhere visible
  | 'undefined-output' // a graph output defined nowhere visible
  | 'unknown-op'
  | 'invalid-node' // the op rule rejects the node's operands or attributes
  | 'type-mismatch' // recorded output type differs from the inferred one
  | 'constant-type' // a constant value's type differs from its data's
  | 'placement';

interface Diagnostic {
  readonly code: VerifyCode;
  /** Full message: where (graph path, node index, op and name), what, expected versus got. */
  readonly message: string;
  /** ONNX name of the node concerned, when there is one. */
  readonly nodeName?: string;
}

export interface VerifyOptions {
  /** Default-domain opset for verifyGraph/diagnoseGraph (modules carry their own); 18. */
  readonly opset?: number;
  /**
   * Placement rules to apply. Default: DEFAULT_PLACEMENT_RULES, plus the SPMD rule for modules
   * that carry placements (diagnoseModule).
   */
  readonly placementRules?: readonly PlacementRule[];
}

/**
 * Without explicit `placementRules`, a module that carries placements (one compiled for a mesh)
 * is also checked with the SPMD placement rule (verify-spmd-rule.ts).
 */
export function diagnoseModule(m: Module, opts: VerifyOptions = {}): Diagnostic[] {
  const rules = opts.placementRules ?? (carriesPlacements(m) ? [...DEFAULT_PLACEMENT_RULES, spmdPlacementRule(m)] : DEFAULT_PLACEMENT_RULES);
  return new Verifier({ ...opts, placementRules: rules }).run(m.graph, m.opset);
}

export function diagnoseGraph(g: Graph, opts: VerifyOptions = {}): Diagnostic[] {
  return new Verifier(opts).run(g, opts.opset ?? 18);
}

function formatDiagnostics(ds: readonly Diagnostic[]): string {
  return ds.map((d) => `  - [${d.code}] ${d.message}`).join('\n');
}

function throwIfAny(ds: readonly Diagnostic[]): void {
  if (ds.length === 0) return;
  const head = `IR verification failed with ${ds.length} problem${ds.length === 1 ? '' : 's'}:`;
  throw new IrError('E_VERIFY', `${head}\n${formatDiagnostics(ds)}`, ds[0]!.nodeName);
}

/** Throws IrError('E_VERIFY') listing every problem; returns nothing when the module is valid. */
export function verifyModule(m: Module, opts: VerifyOptions = {}): void {
  throwIfAny(diagnoseModule(m, opts));
}

function verifyGraph(g: Graph, opts: VerifyOptions = {}): void {
  throwIfAny(diagnoseGraph(g, opts));
}

function describe(v: Value): string {
  return `value ${v.name ? `'${v.name}'` : `#${v.id}`} ${formatTensorType(v.type)}`;
}

/** Values visible in a graph: its own definitions so far, then those of enclosing graphs. */
class Scope {
  private readonly own = new Set<Value>();
  constructor(private readonly parent?: Scope) {}
  add(v: Value): void {
    this.own.add(v);
  }
  has(v: Value): boolean {
    return this.own.has(v) || (this.parent?.has(v) ?? false);
  }
}

class Verifier {
  private readonly diags: Diagnostic[] = [];
  /** Where each value was defined, for redefinition messages. */
  private readonly defined = new Map<Value, string>();
  private readonly checkedConsts = new Set<Value>();
  private readonly rules: readonly PlacementRule[];

  constructor(opts: VerifyOptions) {
    this.rules = opts.placementRules ?? DEFAULT_PLACEMENT_RULES;
  }

  run(g: Graph, opset: number): Diagnostic[] {
    this.graph(g, g.name || 'graph', undefined, new TypeReplay(opset));
    return this.diags;
  }

  private report(code: VerifyCode, message: string, node?: Node): void {
    this.diags.push(node?.name ? { code, message, nodeName: node.name } : { code, message });
  }

  private define(v: Value, where: string, scope: Scope, node?: Node): void {
    const prev = this.defined.get(v);
    if (prev !== undefined) {
      this.report('redefined', `${where}: ${describe(v)} is already defined (${prev}); each value must be defined exactly once`, node);
    } else this.defined.set(v, where);
    scope.add(v);
  }

  private constant(v: Value, where: string, node: Node): void {
    if (this.checkedConsts.has(v)) return;
    this.checkedConsts.add(v);
    const t = v.constant!.type;
    if (t.dtype !== v.dtype || t.shape.length !== v.shape.length || t.shape.some((d, i) => d !== v.shape[i])) {
      this.report('constant-type', `${where}: constant ${describe(v)} holds data of type ${formatTensorType(t)}`, node);
    }
  }

  private graph(g: Graph, path: string, parent: Scope | undefined, replay: TypeReplay): void {
    const scope = new Scope(parent);
    g.inputs.forEach((v, i) => {
      this.define(v, `${path}: input ${i}`, scope);
      replay.input(v);
    });
    const definedAt = new Map<Value, number>();
    g.nodes.forEach((n, i) => n.outputs.forEach((o) => definedAt.has(o) || definedAt.set(o, i)));

    g.nodes.forEach((n, i) => {
      const where = `${path}: node #${i} ${n.label}`;
      let ok = true;
      n.inputs.forEach((v, k) => {
        if (!v) return;
        if (v.constant) return this.constant(v, where, n);
        if (scope.has(v)) return;
        ok = false;
        const j = definedAt.get(v);
        if (j !== undefined) {
          const by = j === i ? 'this node itself' : `node #${j} ${g.nodes[j]!.label}`;
          this.report('not-topological', `${where}: input ${k} (${describe(v)}) is defined later, by ${by}; nodes must be in topological order`, n);
        } else {
          this.report('undefined-value', `${where}: input ${k} (${describe(v)}) is not defined in this graph or an enclosing one (dangling input)`, n);
        }
      });
      if (!isOpKind(n.op)) {
        ok = false;
        this.report('unknown-op', `${where}: unknown op '${n.op}'`, n);
      }
      for (const key of Object.keys(n.attrs).sort()) {
        const a = n.attrs[key]!;
        if (a.kind === 'graph') this.graph(a.value, `${where}.${key}`, scope, replay.child());
        if (a.kind === 'graphs') a.value.forEach((sg, j) => this.graph(sg, `${where}.${key}[${j}]`, scope, replay.child()));
      }
      if (ok) this.inferNode(n, where, replay);
      else replay.bindUnknown(n.outputs);
      for (const rule of this.rules) {
        const problem = rule(n);
        if (problem) this.report('placement', `${where}: ${problem}`, n);
      }
      n.outputs.forEach((o, k) => this.define(o, `${where} output ${k}`, scope, n));
    });

    g.outputs.forEach((v, k) => {
      if (!v.constant && !scope.has(v)) {
        this.report('undefined-output', `${path}: output ${k} (${describe(v)}) is not defined in this graph or an enclosing one`);
      }
    });
  }

  private inferNode(n: Node, where: string, replay: TypeReplay): void {
    let inferred: TensorType[];
    try {
      inferred = replay.infer(n.op, n.inputs, n.attrs, n.outputs.map((o) => o.type), n.name);
    } catch (e) {
      this.report('invalid-node', `${where}: ${e instanceof Error ? e.message : String(e)}`, n);
      replay.bindUnknown(n.outputs);
      return;
    }
    n.outputs.forEach((o, k) => {
      const t = inferred[k]!;
      if (!replay.matches(t, o.type)) {
        this.report('type-mismatch', `${where}: output ${k} has type ${formatTensorType(o.type)}, but the op rule infers ${formatTensorType(replay.rename(t))}`, n);
      }
    });
    replay.bind(n.outputs);
  }
}
