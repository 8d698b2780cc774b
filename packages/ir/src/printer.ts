/**
 * The canonical IR text form: what we debug, test and review. One line per node, deterministic:
 *
 *   module opset(ai.onnx=18) {
 *     graph main(%0: f32[1,64,16], %1: f32[B,16]) {  # x, t
 *       %2 = const f32[16,32] <hash 3f9a1c2e0a1b2c3d>  # blocks.0.w
 *       %3 = const i64[3] [1, 64, 32]
 *       %4 = MatMul(%0, %2) : f32[1,64,32]  # node_MatMul_1
 *       %5, %6 = Split(%4) {axis=2, num_outputs=2} : f32[1,64,16], f32[1,64,16]
 *       %7 = If(%c) {  # if_0
 *         else_branch=graph else_body() {
 *           return %5
 *         },
 *         then_branch=graph then_body() {
 *           return %6
 *         }
 *       } : f32[1,64,16]
 *       return %7  # out
 *     }
 *   }
 *
 * - Values are renumbered %0, %1, ... in definition order: graph inputs, then the constants the
 *   graph uses (first-use order; a subgraph lists those its enclosing graphs do not), then per
 *   node its outputs followed by the values of its subgraphs. Numbers are unique in the module.
 * - Omitted optional inputs print as `_`. Attributes sort by name (text-format.ts says how
 *   numbers print). Tensor data up to `inlineLimit` elements prints inline, larger data as
 *   `<hash H>` (its content hash); constants identified by their source always print elided.
 * - Names (node names, constant names, graph input and output names) are provenance: they print
 *   only as trailing `#` hints, which the parser reads back but structural equality ignores.
 */
import type { AttrValue, Graph, Module, Node, Value } from './graph';
import { isStaticShape } from './graph';
import type { Tensor } from './tensor';
import { numel } from './tensor';
import { constantHash, hashedBySource, isElided, tensorHash } from './content-hash';
import { normalizedOpsets } from './structural';
import { formatElement, formatFloatAttr, formatHint, formatName, formatTensorType, quote } from './text-format';

const DEFAULT_INLINE_LIMIT = 16;

interface PrintOptions {
  /** Print provenance hints (`# name`); default true. Off for name-free diffs. */
  readonly names?: boolean;
  /** Tensor data with at most this many elements prints inline; default 16. */
  readonly inlineLimit?: number;
}

export function printModule(m: Module, opts: PrintOptions = {}): string {
  return new Printer(opts).module(m);
}

/** Prints a graph on its own (no module header); values it captures print as `%undef_<id>`. */
export function printGraph(g: Graph, opts: PrintOptions = {}): string {
  return new Printer(opts).graphText(g);
}

class Printer {
  private readonly names: boolean;
  private readonly inlineLimit: number;
  /** Numbers of graph inputs and node outputs (unique in the module: SSA). */
  private readonly ids = new Map<Value, string>();
  /** Numbers of the constants each graph lists. */
  private readonly constIds = new Map<Graph, Map<Value, string>>();
  private counter = 0;
  private readonly stack: Graph[] = [];
  private readonly lines: string[] = [];

  constructor(opts: PrintOptions) {
    this.names = opts.names ?? true;
    this.inlineLimit = opts.inlineLimit ?? DEFAULT_INLINE_LIMIT;
  }

  module(m: Module): string {
    const domains = normalizedOpsets(m.opsets).map(([d, v]) => `${formatName(d === '' ? 'ai.onnx' : d)}=${v}`);
    this.number(m.graph, new Set());
    this.lines.push(`module opset(${domains.join(', ')}) {`);
    this.graph(m.graph, 1, `graph ${formatName(m.graph.name)}`);
    this.lines.push('}');
    return this.lines.join('\n') + '\n';
  }

  graphText(g: Graph): string {
    this.number(g, new Set());
    this.graph(g, 0, `graph ${formatName(g.name)}`);
    return this.lines.join('\n') + '\n';
  }

  // -------------------------------------------------------------------------------------------
  // Pass 1: numbering in print order (so a use before its definition still shows the real id).

  private fresh(): string {
    return `%${this.counter++}`;
  }

  private number(g: Graph, enclosingConsts: ReadonlySet<Value>): void {
    for (const v of g.inputs) if (!this.ids.has(v)) this.ids.set(v, this.fresh());
    const own = new Map<Value, string>();
    for (const c of g.constants()) if (!enclosingConsts.has(c) && !this.ids.has(c)) own.set(c, this.fresh());
    this.constIds.set(g, own);
    const visible = new Set([...enclosingConsts, ...own.keys()]);
    for (const n of g.nodes) {
      for (const o of n.outputs) if (!this.ids.has(o)) this.ids.set(o, this.fresh());
      for (const sg of n.subgraphs()) this.number(sg, visible);
    }
  }

  private ref(v: Value | null): string {
    if (v === null) return '_';
    const id = this.ids.get(v);
    if (id !== undefined) return id;
    if (v.constant) {
      for (let i = this.stack.length - 1; i >= 0; i--) {
        const c = this.constIds.get(this.stack[i]!)?.get(v);
        if (c !== undefined) return c;
      }
    }
    return `%undef_${v.id}`;
  }

  private hint(names: readonly string[]): string {
    if (!this.names || names.every((n) => n === '')) return '';
    return `  # ${formatHint(names)}`;
  }

  // -------------------------------------------------------------------------------------------
  // Pass 2: text.

  /** Prints `header(...) {`, the body and `}`; `header` may carry an attribute prefix. */
  private graph(g: Graph, depth: number, header: string, closing = '}'): void {
    const pad = '  '.repeat(depth);
    const body = '  '.repeat(depth + 1);
    this.stack.push(g);
    const params = g.inputs.map((v) => `${this.ref(v)}: ${formatTensorType(v.type)}`).join(', ');
    this.lines.push(`${pad}${header}(${params}) {${this.hint(g.inputs.map((v) => v.name))}`);
    for (const [c, id] of this.constIds.get(g) ?? []) {
      this.lines.push(`${body}${id} = const ${formatTensorType(c.type)} ${this.constData(c)}${this.hint([c.name])}`);
    }
    for (const n of g.nodes) this.node(n, depth + 1);
    const outs = g.outputs.map((v) => this.ref(v)).join(', ');
    this.lines.push(`${body}return${outs ? ' ' : ''}${outs}${this.hint(g.outputs.map((v) => v.name))}`);
    this.lines.push(`${pad}${closing}`);
    this.stack.pop();
  }

  private constData(v: Value): string {
    const c = v.constant!;
    const shape = c.type.shape;
    if (isElided(c) || hashedBySource(c) || !isStaticShape(shape) || numel(shape) > this.inlineLimit) {
      return `<hash ${constantHash(c)}>`;
    }
    return this.data(c.tensor());
  }

  private data(t: Tensor): string {
    const parts: string[] = [];
    for (let i = 0; i < t.data.length; i++) parts.push(formatElement(t.dtype, t.data[i]!));
    return `[${parts.join(', ')}]`;
  }

  private tensor(t: Tensor): string {
    const type = formatTensorType({ dtype: t.dtype, shape: t.shape });
    if (isElided(t) || numel(t.shape) > this.inlineLimit) return `${type} <hash ${tensorHash(t)}>`;
    return `${type} ${this.data(t)}`;
  }

  private node(n: Node, depth: number): void {
    const pad = '  '.repeat(depth);
    const lhs = n.outputs.length ? `${n.outputs.map((o) => this.ref(o)).join(', ')} = ` : '';
    const head = `${pad}${lhs}${n.op}(${n.inputs.map((v) => this.ref(v)).join(', ')})`;
    const types = n.outputs.length ? ` : ${n.outputs.map((o) => formatTensorType(o.type)).join(', ')}` : '';
    const hint = this.hint([n.name]);
    const keys = Object.keys(n.attrs).sort();
    if (keys.length === 0) {
      this.lines.push(`${head}${types}${hint}`);
      return;
    }
    const hasGraph = keys.some((k) => n.attrs[k]!.kind === 'graph' || n.attrs[k]!.kind === 'graphs');
    if (!hasGraph) {
      const attrs = keys.map((k) => `${formatName(k)}=${this.scalarAttr(n.attrs[k]!)}`).join(', ');
      this.lines.push(`${head} {${attrs}}${types}${hint}`);
      return;
    }
    // Graph attributes: one attribute per line, graphs as nested blocks.
    this.lines.push(`${head} {${hint}`);
    const inner = '  '.repeat(depth + 1);
    keys.forEach((k, i) => {
      const sep = i < keys.length - 1 ? ',' : '';
      const a = n.attrs[k]!;
      const name = formatName(k);
      if (a.kind === 'graph') {
        this.graph(a.value, depth + 1, `${name}=graph ${formatName(a.value.name)}`, `}${sep}`);
      } else if (a.kind === 'graphs') {
        if (a.value.length === 0) this.lines.push(`${inner}${name}=graphs[]${sep}`);
        else {
          this.lines.push(`${inner}${name}=[`);
          a.value.forEach((g, j) => {
            this.graph(g, depth + 2, `graph ${formatName(g.name)}`, j < a.value.length - 1 ? '},' : '}');
          });
          this.lines.push(`${inner}]${sep}`);
        }
      } else {
        this.lines.push(`${inner}${name}=${this.scalarAttr(a)}${sep}`);
      }
    });
    this.lines.push(`${pad}}${types}`);
  }

  /** An attribute value that fits on one line (everything but graphs). */
  private scalarAttr(a: AttrValue): string {
    switch (a.kind) {
      case 'int':
        return String(a.value === 0 ? 0 : a.value);
      case 'float':
        return formatFloatAttr(a.value);
      case 'string':
        return quote(a.value);
      case 'tensor':
        return this.tensor(a.value);
      case 'ints':
        return a.value.length ? `[${a.value.map((x) => String(x === 0 ? 0 : x)).join(',')}]` : 'ints[]';
      case 'floats':
        return a.value.length ? `[${a.value.map(formatFloatAttr).join(',')}]` : 'floats[]';
      case 'strings':
        return a.value.length ? `[${a.value.map(quote).join(',')}]` : 'strings[]';
      case 'tensors':
        return a.value.length ? `[${a.value.map((t) => this.tensor(t)).join(', ')}]` : 'tensors[]';
      case 'graph':
      case 'graphs':
        return `<${a.kind}>`; // not reached: node() prints graphs as blocks
      default:
        return assertNever(a);
    }
  }
}

function assertNever(x: never): never {
  throw new Error(`unexpected attribute ${JSON.stringify(x)}`);
}
