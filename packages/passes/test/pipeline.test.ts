/**
 * Pass infrastructure: runPipeline order and identity, the instruments (verify with blame, timing
 * report with nesting and counters, print-after dumps), error wrapping, and context options.
 */
import { Graph, InternalError, IrError, Module, Node, Value } from '@paradit/ir';
import {
  DEFAULT_PASS_OPTIONS,
  Pass,
  PassReport,
  createPassContext,
  pipelinePass,
  removeNoopOps,
  eliminateDeadCode,
  runPipeline,
} from '@paradit/passes';
import { ir } from './helpers';

const SAMPLE = `
  graph main(%x: f32[3]) {
    %a = Identity(%x)
    %b = Exp(%a)
    %dead = Neg(%x)
    return %b
  }`;

const noop: Pass = { name: 'noop', description: 'changes nothing', run: (m) => m };

describe('runPipeline and instruments', () => {
  test('passes run in order; an unchanged module is the same object', () => {
    const order: string[] = [];
    const spy = (name: string): Pass => ({ name, description: '', run: (m) => (order.push(name), m) });
    const m = ir(SAMPLE);
    expect(runPipeline(m, [spy('a'), spy('b'), spy('c')], createPassContext())).toBe(m);
    expect(order).toEqual(['a', 'b', 'c']);
  });

  test('verify runs on the input and after every pass that changed the module', () => {
    const verified: number[] = [];
    const ctx = createPassContext({ verify: (m) => verified.push(m.graph.nodes.length) });
    const out = runPipeline(ir(SAMPLE), [removeNoopOps, noop, eliminateDeadCode], ctx);
    expect(out.graph.nodes.map((n) => n.op)).toEqual(['Exp']);
    expect(verified).toEqual([3, 2, 1]); // input, after remove-noop-ops, after eliminate-dead-code
  });

  test('a pass that produces invalid IR is blamed by name', () => {
    // Drops every node but keeps the outputs: the outputs are then defined nowhere.
    const broken: Pass = { name: 'broken', description: '', run: (m) => m.withGraph(new Graph(m.graph.inputs, [], m.graph.outputs)) };
    let err: unknown;
    try {
      runPipeline(ir(SAMPLE), [noop, broken], createPassContext({ verify: true }));
    } catch (e) {
      err = e;
    }
    // A bug in ParaDiT (exit 3 in the CLI), not bad input: the verifier's IrError is its cause.
    expect(err).toBeInstanceOf(InternalError);
    expect((err as InternalError).where).toBe("pass 'broken'");
    expect(((err as InternalError).cause as IrError).code).toBe('E_VERIFY');
    expect((err as InternalError).message).toMatch(/^pass 'broken' produced invalid IR \(its input verified; the pass is at fault\): IR verification failed/);
  });

  test('an error thrown inside a pass keeps its code and node and gains the pass name', () => {
    const failing: Pass = {
      name: 'failing',
      description: '',
      run: () => {
        throw new IrError('E_OP', "Reshape 'r1': cannot reshape", 'r1');
      },
    };
    const plain: Pass = {
      name: 'plain',
      description: '',
      run: () => {
        throw new TypeError('oops');
      },
    };
    expect(() => runPipeline(ir(SAMPLE), [failing], createPassContext())).toThrow(/^pass 'failing' failed: Reshape 'r1': cannot reshape$/);
    try {
      runPipeline(ir(SAMPLE), [failing], createPassContext());
    } catch (e) {
      expect((e as IrError).code).toBe('E_OP');
      expect((e as IrError).nodeName).toBe('r1');
    }
    expect(() => runPipeline(ir(SAMPLE), [plain], createPassContext())).toThrow(/^pass 'plain' failed: oops$/);
    // A TypeError is a bug in the pass: an InternalError naming it, never an IrError (bad input).
    expect(() => runPipeline(ir(SAMPLE), [plain], createPassContext())).toThrow(InternalError);
    expect(() => runPipeline(ir(SAMPLE), [failing], createPassContext())).toThrow(IrError);
  });

  test('the timing report nests pipelines, counts runs and changes, and collects rule counters', () => {
    const report = new PassReport();
    const cleanup = pipelinePass('cleanup', 'noop removal then DCE', [removeNoopOps, eliminateDeadCode]);
    runPipeline(ir(SAMPLE), [cleanup, noop], createPassContext({ report }));
    const rows = report.entries().map((e) => [e.path, e.runs, e.changed]);
    expect(rows).toEqual([
      ['cleanup', 1, 1],
      ['cleanup/remove-noop-ops', 1, 1],
      ['cleanup/eliminate-dead-code', 1, 1],
      ['noop', 1, 0],
    ]);
    expect(report.counters().get('cleanup/remove-noop-ops/identity')).toBe(1);
    expect(report.counters().get('cleanup/eliminate-dead-code/removed')).toBe(1);
    const text = report.format();
    expect(text).toMatch(/^pass +runs +changed +ms\ncleanup +1 +1 +[\d.]+\n  remove-noop-ops +1 +1 +[\d.]+\n  eliminate-dead-code/);
    expect(report.totalMs()).toBeGreaterThanOrEqual(0);
  });

  test('print-after dumps the module text after the named passes only', () => {
    const dumps: [string, string][] = [];
    const ctx = createPassContext({ printAfter: ['remove-noop-ops'], dump: (p, t) => dumps.push([p, t]) });
    runPipeline(ir(SAMPLE), [removeNoopOps, eliminateDeadCode], ctx);
    expect(dumps.map((d) => d[0])).toEqual(['remove-noop-ops']);
    expect(dumps[0]![1]).toContain('Exp(%0)');
    expect(dumps[0]![1]).not.toContain('Identity');
    const all: string[] = [];
    runPipeline(ir(SAMPLE), [removeNoopOps, eliminateDeadCode], createPassContext({ printAfter: ['*'], dump: (p) => all.push(p) }));
    expect(all).toEqual(['remove-noop-ops', 'eliminate-dead-code']);
  });

  test('options: defaults, overrides, and no sharing between contexts', () => {
    const a = createPassContext({ options: { foldMaxElements: 8 } });
    const b = createPassContext();
    expect(a.options.foldMaxElements).toBe(8);
    expect(a.options.cseMaxContentElements).toBe(DEFAULT_PASS_OPTIONS.cseMaxContentElements);
    expect(b.options.foldMaxElements).toBe(DEFAULT_PASS_OPTIONS.foldMaxElements);
    expect(Object.isFrozen(a.options)).toBe(true);
    expect(b.instruments.verify).toBeUndefined();
    expect(createPassContext({ verify: true }).instruments.verify).toBeDefined();
  });

  test('passes never touch their input module', () => {
    const m = ir(SAMPLE);
    const nodes = [...m.graph.nodes];
    const inputs: (Value | null)[][] = nodes.map((n: Node) => [...n.inputs]);
    runPipeline(m, [removeNoopOps, eliminateDeadCode], createPassContext({ verify: true }));
    expect(m.graph.nodes).toEqual(nodes);
    m.graph.nodes.forEach((n, i) => expect([...n.inputs]).toEqual(inputs[i]));
    expect(Object.isFrozen(m.graph.nodes)).toBe(true);
    expect(m).toBeInstanceOf(Module);
  });

  test('a graph output keeps its name when a pass replaces it with an unnamed value', () => {
    // The pass swaps Exp for Sigmoid with a fresh, unnamed output (as shard-sequence's final gather did).
    const swap: Pass = {
      name: 'swap',
      description: '',
      run: (m) => {
        const g = m.graph;
        const exp = g.nodes.find((n) => n.op === 'Exp')!;
        const fresh = new Value(exp.outputs[0]!.type);
        const nodes = g.nodes.map((n) => (n === exp ? new Node('Sigmoid', n.inputs, [fresh], {}, n.name) : n));
        return m.withGraph(new Graph(g.inputs, nodes, [fresh], g.name));
      },
    };
    const before = ir(SAMPLE.replace('return %b', 'return %b  # sample'));
    expect(before.graph.outputs[0]!.name).toBe('sample');
    const out = runPipeline(before, [swap], createPassContext({ verify: true }));
    expect(out.graph.outputs[0]!.name).toBe('sample');
    expect(out.graph.nodes.find((n) => n.op === 'Sigmoid')!.outputs[0]).toBe(out.graph.outputs[0]);
    // A pass that names the output itself is left alone.
    const named: Pass = { name: 'named', description: '', run: (m) => m.withGraph(new Graph(m.graph.inputs, m.graph.nodes, m.graph.outputs.map((v) => new Value(v.type, 'other')), m.graph.name)) };
    expect(() => runPipeline(before, [named], createPassContext())).not.toThrow();
  });
});
