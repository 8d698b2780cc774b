/**
 * Reads the IR text form (printer.ts) back into a Module: `parseModule(printModule(m))` is
 * structurally equal to `m`. text-syntax.ts reads the syntax; this file resolves value labels in
 * scope (a subgraph sees the values of its enclosing graphs defined before its node), rebuilds
 * constants (elided `<hash ...>` data becomes a constant that compares equal by hash but throws
 * when read) and re-infers every node's types with the op rules (replay.ts: the builder's own
 * InferCtx and folding), failing when the written types differ from the inferred ones.
 *
 * Every error is an IrError('E_PARSE') that gives line:column, what was expected and what was
 * found, and shows the offending line.
 */
import type { AttrValue, Attrs, TensorType } from './graph';
import { ConstData, Graph, Module, Node, Value } from './graph';
import { isIrError } from './errors';
import { isOpKind } from './ops';
import { elidedConstData } from './content-hash';
import { TypeReplay } from './replay';
import { formatTensorType, parseHint } from './text-format';
import { textError } from './text-tokens';
import { parseSyntax } from './text-syntax';
import type { AttrAst, ConstAst, GraphAst, NodeAst, Pos, RefAst } from './text-ast';

export interface ParseOptions {
  /** Default-domain opset for text that is a bare `graph` without a `module` header (18). */
  readonly opset?: number;
}

export function parseModule(text: string, opts: ParseOptions = {}): Module {
  const ast = parseSyntax(text);
  const opsets = ast.opsets ?? { '': opts.opset ?? 18 };
  const opset = opsets[''] ?? opsets['ai.onnx'] ?? 0;
  const graph = new IrReader(text).graph(ast.graph, undefined, new TypeReplay(opset));
  return new Module(graph, opsets);
}

/** Labels visible in one graph and (through `parent`) its enclosing graphs. */
class Scope {
  private readonly vars = new Map<string, { value: Value; pos: Pos }>();
  constructor(readonly parent?: Scope) {}

  lookup(label: string): { value: Value; pos: Pos } | undefined {
    return this.vars.get(label) ?? this.parent?.lookup(label);
  }

  define(label: string, value: Value, pos: Pos, fail: (p: Pos, m: string) => never): void {
    const prev = this.lookup(label);
    if (prev) fail(pos, `value %${label} is already defined at ${prev.pos.line}:${prev.pos.col}; each value is defined once`);
    this.vars.set(label, { value, pos });
  }
}

/** Names from a hint when it lists exactly `count` names, else none. */
function hintNames(hint: string | undefined, count: number): readonly string[] | undefined {
  if (hint === undefined || count === 0) return undefined;
  const names = parseHint(hint);
  return names && names.length === count ? names : undefined;
}

class IrReader {
  constructor(private readonly src: string) {}

  private readonly fail = (p: Pos, message: string): never => {
    throw textError(this.src, p.line, p.col, message);
  };

  graph(ast: GraphAst, parent: Scope | undefined, replay: TypeReplay): Graph {
    const scope = new Scope(parent);
    // Labels defined anywhere in this graph's body, for "used before its definition" messages.
    const later = new Map<string, Pos>();
    for (const s of ast.body) {
      if (s.kind === 'const') later.set(s.label, s.pos);
      else for (const l of s.labels) later.set(l.label, l.pos);
    }
    const returnNames = new Map<string, string>();
    const retHint = hintNames(ast.returnHint, ast.returns.length);
    ast.returns.forEach((r, i) => retHint && !returnNames.has(r.label) && returnNames.set(r.label, retHint[i]!));
    const inputNames = hintNames(ast.headerHint, ast.params.length);

    const inputs = ast.params.map((p, i) => {
      const v = new Value(p.type, inputNames?.[i] ?? returnNames.get(p.label) ?? '');
      scope.define(p.label, v, p.pos, this.fail);
      replay.input(v);
      return v;
    });
    const nodes: Node[] = [];
    for (const s of ast.body) {
      if (s.kind === 'const') scope.define(s.label, this.constant(s), s.pos, this.fail);
      else nodes.push(this.node(s, scope, replay, later, returnNames));
    }
    const outputs = ast.returns.map((r) => this.resolve(r, scope, later));
    return new Graph(inputs, nodes, outputs, ast.name);
  }

  private constant(s: ConstAst): Value {
    const names = hintNames(s.hint, 1);
    let data: ConstData;
    if (s.data.kind === 'elided') data = elidedConstData(s.type, s.data.hash);
    else data = ConstData.of(s.data.tensor);
    return new Value(s.type, names?.[0] ?? '', data);
  }

  private resolve(r: RefAst, scope: Scope, later: ReadonlyMap<string, Pos>): Value {
    const found = scope.lookup(r.label);
    if (found) return found.value;
    const def = later.get(r.label);
    if (def) this.fail(r.pos, `value %${r.label} is used before its definition at ${def.line}:${def.col}`);
    return this.fail(r.pos, `undefined value %${r.label}`);
  }

  private node(s: NodeAst, scope: Scope, replay: TypeReplay, later: ReadonlyMap<string, Pos>, returnNames: ReadonlyMap<string, string>): Node {
    const inputs = s.args.map((a) => (a ? this.resolve(a, scope, later) : null));
    const op = s.op;
    if (!isOpKind(op)) return this.fail(s.opPos, `expected a known op, got unknown op '${op}'`);
    const attrs = this.attrs(s.attrs, scope, replay);
    const name = hintNames(s.hint, 1)?.[0] ?? '';
    const declared: readonly (TensorType | undefined)[] = s.types ?? s.labels.map(() => undefined);
    let inferred: TensorType[];
    try {
      inferred = replay.infer(op, inputs, attrs, declared, name);
    } catch (e) {
      if (isIrError(e)) this.fail(s.opPos, e.message);
      throw e;
    }
    // Written types win: they equal the inferred ones and may add a placement rules do not infer.
    const recorded = declared.map((t, i) => t ?? replay.rename(inferred[i]!));
    recorded.forEach((t, i) => {
      if (!replay.matches(inferred[i]!, t)) {
        this.fail(
          s.typesPos,
          `${s.op}${name ? ` '${name}'` : ''}: expected output ${i} to have the inferred type ` +
            `${formatTensorType(replay.rename(inferred[i]!))}, got ${formatTensorType(t)} written`,
        );
      }
    });
    const outputs = s.labels.map((l, i) => new Value(recorded[i]!, returnNames.get(l.label) ?? ''));
    s.labels.forEach((l, i) => scope.define(l.label, outputs[i]!, l.pos, this.fail));
    replay.bind(outputs);
    return new Node(op, inputs, outputs, attrs, name);
  }

  private attrs(asts: ReadonlyMap<string, AttrAst>, scope: Scope, replay: TypeReplay): Attrs {
    const out: Record<string, AttrValue> = {};
    for (const [k, a] of asts) {
      if (a.kind === 'value') out[k] = a.value;
      // A subgraph sees the values defined so far (not the outputs of the node that owns it).
      else if (a.kind === 'graph') out[k] = { kind: 'graph', value: this.graph(a.graph, scope, replay.child()) };
      else out[k] = { kind: 'graphs', value: a.graphs.map((g) => this.graph(g, scope, replay.child())) };
    }
    return out;
  }
}
