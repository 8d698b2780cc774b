/**
 * The greedy pattern rewriter: applies a list of local rules (rewrite.ts) to a fixpoint.
 *
 * It keeps a private working copy of the graph (nodes in a linked list, producer and user maps)
 * and a worklist seeded with every node in topological order. A node is offered to each rule in
 * list order; the first rewrite that applies replaces the node's outputs, re-queues the nodes
 * whose inputs changed, the new nodes, and the neighbours of values whose use counts dropped,
 * and erases nodes that the rewrite left without users (only those: dead code that was there
 * before is eliminate-dead-code's business). New nodes go right before the node they replace, so the order
 * stays topological. Subgraphs (If branches) are rewritten first, each with its own worklist.
 *
 * The input graph is never touched: when no rule applies, the same Graph object comes back;
 * otherwise a new Graph that shares every untouched node.
 */
import { Graph, IrError, Module, Node, Placement, Tensor, Value, capturedValues, formatType, numel, updateNode } from '@paradit/ir';
import type { OpKind } from '@paradit/ir';
import type { Pass } from './pass';
import { GraphView, Rewrite, RewriteBuilder, RewriteRule, sameShape, staticShapeOf } from './rewrite';
import { hasSubgraphs, mapSubgraphAttrs, substituteNode } from './graph-edit';

export interface RewriteOptions {
  readonly opset: number;
  /** Most rewrites per graph: stepsPerNode * nodes + 1000 (guards against rules undoing each other). */
  readonly stepsPerNode?: number;
  /** Called after each applied rewrite (statistics, tracing). */
  readonly onApply?: (rule: string, node: Node) => void;
}

/** Applies `rules` to `g` and its subgraphs until none matches; `g` itself when none ever did. */
export function applyRewrites(g: Graph, rules: readonly RewriteRule[], opts: RewriteOptions, parent?: GraphView): Graph {
  const w = new WorkGraph(g, opts.opset, parent);
  w.rewriteSubgraphs(rules, opts);
  w.run(rules, opts);
  return w.result();
}

/** A pass made of local rules (one pass per file still: the file defines the rules and calls this). */
export function rewritePass(name: string, description: string, rules: readonly RewriteRule[]): Pass {
  return {
    name,
    description,
    run(m: Module, ctx) {
      const report = ctx.instruments.report;
      const g = applyRewrites(m.graph, rules, {
        opset: m.opset,
        stepsPerNode: ctx.options.rewriteStepsPerNode,
        onApply: report ? (rule) => report.count(rule) : undefined,
      });
      return m.withGraph(g);
    },
  };
}

interface Slot {
  node: Node;
  prev: Slot | undefined;
  next: Slot | undefined;
}

class WorkGraph implements GraphView {
  private readonly head: Slot;
  private readonly slots = new Map<Node, Slot>();
  private readonly producers = new Map<Value, Node>();
  private readonly readers = new Map<Value, Set<Node>>();
  private outputs: Value[];
  private readonly outputSet = new Set<Value>();
  private readonly queue: Node[] = [];
  private queueHead = 0;
  private readonly queued = new Set<Node>();
  private changed = false;

  constructor(
    private readonly graph: Graph,
    readonly opset: number,
    private readonly parent: GraphView | undefined,
  ) {
    this.head = { node: undefined as unknown as Node, prev: undefined, next: undefined };
    let last = this.head;
    for (const n of graph.nodes) {
      const s: Slot = { node: n, prev: last, next: undefined };
      last.next = s;
      last = s;
      this.register(n, s);
    }
    this.outputs = [...graph.outputs];
    for (const v of this.outputs) this.outputSet.add(v);
  }

  // --- GraphView --------------------------------------------------------------------------

  producer(v: Value | null | undefined): Node | undefined {
    if (!v) return undefined;
    return this.producers.get(v) ?? this.parent?.producer(v);
  }

  producerOf(v: Value | null | undefined, op: OpKind): Node | undefined {
    const p = this.producer(v);
    return p && p.op === op ? p : undefined;
  }

  users(v: Value): readonly Node[] {
    const r = this.readers.get(v);
    return r ? [...r] : [];
  }

  hasSingleUser(v: Value): boolean {
    // A value of an enclosing graph may have readers there that this view cannot see.
    if (this.parent && !this.producers.has(v) && !this.graph.inputs.includes(v)) return false;
    return (this.readers.get(v)?.size ?? 0) === 1 && !this.outputSet.has(v);
  }

  isGraphOutput(v: Value): boolean {
    return this.outputSet.has(v);
  }

  constant(v: Value | null | undefined, maxElements = 1 << 16): Tensor | undefined {
    if (!v || !v.constant) return undefined;
    const s = staticShapeOf(v);
    if (!s || numel(s) > maxElements) return undefined;
    return v.constant.tensor();
  }

  ints(v: Value | null | undefined): number[] | undefined {
    return this.constant(v, 4096)?.toArray();
  }

  splat(v: Value | null | undefined): number | undefined {
    const t = this.constant(v);
    if (!t || t.size === 0) return undefined;
    const x = t.data[0]!;
    for (let i = 1; i < t.size; i++) if (t.data[i] !== x) return undefined;
    return x;
  }

  // --- the loop ----------------------------------------------------------------------------

  rewriteSubgraphs(rules: readonly RewriteRule[], opts: RewriteOptions): void {
    for (let s = this.head.next; s; s = s.next) {
      const n = s.node;
      if (!hasSubgraphs(n)) continue;
      const attrs = mapSubgraphAttrs(n.attrs, (sg) => applyRewrites(sg, rules, opts, this));
      if (attrs !== n.attrs) this.replaceNode(n, updateNode(n, { attrs }));
    }
  }

  run(rules: readonly RewriteRule[], opts: RewriteOptions): void {
    for (let s = this.head.next; s; s = s.next) this.enqueue(s.node);
    const maxSteps = (opts.stepsPerNode ?? 20) * this.slots.size + 1000;
    let steps = 0;
    while (this.queueHead < this.queue.length) {
      const n = this.queue[this.queueHead++]!;
      this.queued.delete(n);
      if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
        this.queue.splice(0, this.queueHead);
        this.queueHead = 0;
      }
      if (!this.slots.has(n)) continue; // erased or rebuilt since it was queued
      for (const rule of rules) {
        const r = rule(n, this);
        if (!r || !this.apply(n, r, rule.name || 'anonymous rule')) continue;
        opts.onApply?.(rule.name || 'anonymous rule', n);
        if (++steps > maxSteps) {
          throw new IrError(
            'E_VERIFY',
            `the rewriter made ${steps} rewrites on a graph of ${this.slots.size} nodes without reaching a fixpoint ` +
              `(last: rule '${rule.name}' on ${n.label}); two rules probably undo each other`,
            n.name,
          );
        }
        break;
      }
    }
  }

  /** The rewritten graph; the original object when nothing changed. */
  result(): Graph {
    if (!this.changed) return this.graph;
    const nodes: Node[] = [];
    for (let s = this.head.next; s; s = s.next) nodes.push(s.node);
    return new Graph(this.graph.inputs, nodes, this.outputs, this.graph.name);
  }

  /** Applies one rewrite of node n; false when it turns out to change nothing. */
  private apply(n: Node, r: Rewrite, rule: string): boolean {
    let values: readonly Value[];
    let built: readonly Node[] = [];
    if (r.kind === 'values') values = r.values;
    else {
      const b = new RewriteBuilder(this.opset, n.name);
      const res = r.build(b);
      if (res === undefined) return false;
      values = res instanceof Value ? [res] : res;
      built = b.build([]).nodes;
    }
    const where = `rewrite rule '${rule}' on ${n.label}`;
    if (values.length !== n.outputs.length) {
      throw new IrError('E_VERIFY', `${where}: gave ${values.length} replacement values for ${n.outputs.length} outputs; give one per output (the output itself to keep it)`, n.name);
    }
    values.forEach((v, i) => {
      const o = n.outputs[i]!;
      if (v.dtype !== o.dtype || !sameShape(v.shape, o.shape) || !samePlacement(v.type.placement, o.type.placement)) {
        throw new IrError(
          'E_VERIFY',
          `${where}: the replacement of output ${i} has type ${formatType(v.type)}, but the output has type ${formatType(o.type)}; ` +
            'a rewrite must keep every output type (insert a Reshape or Cast in the replacement, or do not match)',
          n.name,
        );
      }
    });
    if (values.every((v, i) => v === n.outputs[i])) return false;
    const own = new Set(n.outputs);
    for (const bn of built) {
      if (bn.inputs.some((v) => v !== null && own.has(v))) {
        throw new IrError('E_VERIFY', `${where}: a replacement node reads an output of the node it replaces (a cycle)`, n.name);
      }
    }
    const slot = this.slots.get(n)!;
    for (const bn of built) {
      const s: Slot = { node: bn, prev: slot.prev, next: slot };
      slot.prev!.next = s;
      slot.prev = s;
      this.register(bn, s);
      this.enqueue(bn);
    }
    this.changed = true;
    values.forEach((v, i) => {
      const o = n.outputs[i]!;
      if (v === o) return;
      // A graph output keeps its name (runtimes and users find outputs by name): an unnamed
      // replacement made by a node of this graph takes it.
      if (o.name && !v.name && this.outputSet.has(o)) v = this.nameValue(v, o.name);
      this.replaceAllUses(o, v);
    });
    this.eraseIfDead(n);
    for (let i = built.length - 1; i >= 0; i--) this.eraseIfDead(built[i]!);
    return true;
  }

  /** v renamed (its producer rebuilt with the named output) when this graph makes it; else v. */
  private nameValue(v: Value, name: string): Value {
    const p = this.producers.get(v);
    if (!p || v.constant) return v;
    const named = new Value(v.type, name);
    const p2 = updateNode(p, { outputs: p.outputs.map((o) => (o === v ? named : o)) });
    this.replaceNode(p, p2);
    this.enqueue(p2);
    this.replaceAllUses(v, named);
    return named;
  }

  private replaceAllUses(old: Value, neu: Value): void {
    const rs = this.readers.get(old);
    if (rs && rs.size > 0) {
      const subst = new Map([[old, neu]]);
      for (const u of [...rs]) {
        const u2 = substituteNode(u, subst);
        this.replaceNode(u, u2);
        this.enqueue(u2);
      }
    }
    if (this.outputSet.has(old)) {
      this.outputs = this.outputs.map((v) => (v === old ? neu : v));
      this.outputSet.delete(old);
      this.outputSet.add(neu);
    }
  }

  /** Erases n when nothing reads its outputs, then its producers that became dead the same way. */
  private eraseIfDead(n: Node): void {
    const stack = [n];
    while (stack.length > 0) {
      const m = stack.pop()!;
      const slot = this.slots.get(m);
      if (!slot || !this.isDead(m)) continue;
      slot.prev!.next = slot.next;
      if (slot.next) slot.next.prev = slot.prev;
      const reads = this.unregister(m);
      for (const v of reads) {
        // v lost a reader: its producer may be dead now, and single-use patterns on v (rooted at
        // its producer or at its remaining readers) may match now.
        const p = this.producers.get(v);
        if (p) {
          stack.push(p);
          this.enqueue(p);
        }
        for (const u of this.readers.get(v) ?? []) this.enqueue(u);
      }
    }
  }

  private isDead(n: Node): boolean {
    return n.outputs.every((o) => (this.readers.get(o)?.size ?? 0) === 0 && !this.outputSet.has(o));
  }

  /** Puts u2 (same outputs as u) in u's place. */
  private replaceNode(u: Node, u2: Node): void {
    if (u === u2) return;
    const slot = this.slots.get(u)!;
    this.unregister(u);
    slot.node = u2;
    this.register(u2, slot);
    this.changed = true;
  }

  private register(n: Node, s: Slot): void {
    this.slots.set(n, s);
    for (const o of n.outputs) this.producers.set(o, n);
    for (const v of readsOf(n)) {
      let set = this.readers.get(v);
      if (!set) this.readers.set(v, (set = new Set()));
      set.add(n);
    }
  }

  private unregister(n: Node): Set<Value> {
    this.slots.delete(n);
    for (const o of n.outputs) if (this.producers.get(o) === n) this.producers.delete(o);
    const reads = readsOf(n);
    for (const v of reads) this.readers.get(v)?.delete(n);
    return reads;
  }

  private enqueue(n: Node): void {
    if (this.queued.has(n)) return;
    this.queued.add(n);
    this.queue.push(n);
  }
}

/** Values a node reads: its inputs and what its subgraphs capture. */
function readsOf(n: Node): Set<Value> {
  const out = new Set<Value>();
  for (const v of n.inputs) if (v) out.add(v);
  if (hasSubgraphs(n)) for (const sg of n.subgraphs()) for (const v of capturedValues(sg)) out.add(v);
  return out;
}

function samePlacement(a: Placement | undefined, b: Placement | undefined): boolean {
  const ka = a ?? { kind: 'replicated' };
  const kb = b ?? { kind: 'replicated' };
  if (ka.kind === 'replicated' || kb.kind === 'replicated') return ka.kind === kb.kind;
  return ka.axis === kb.axis && ka.meshAxis === kb.meshAxis;
}
