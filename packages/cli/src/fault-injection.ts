/**
 * Test hook: PARADIT_INJECT_FAULT=<kind> makes `inspect` run one extra pass, 'inject-fault', that
 * misbehaves the way a buggy pass would, so the tests (and the fuzz script) can check through
 * the real CLI that bugs exit 3 naming the pass, never 2:
 *   pass-throws      the pass throws a TypeError (a bug in its code)
 *   pass-invalid-ir  the pass returns IR the verifier rejects (outputs defined nowhere)
 *   rule-throws      the interpreter's rule of the first node throws a TypeError (inspect then
 *                    interprets the graph on zeros)
 * Unset (always, outside tests) it does nothing.
 */
import { Graph, IrError, Module, OPS, Tensor, interpret, isStaticShape } from '@paradit/ir';
import type { Pass } from '@paradit/passes';
import { createPassContext, runPipeline } from '@paradit/passes';

const KINDS = ['pass-throws', 'pass-invalid-ir', 'rule-throws'] as const;
type FaultKind = (typeof KINDS)[number];

function wanted(): FaultKind | undefined {
  const v = process.env['PARADIT_INJECT_FAULT'];
  if (v === undefined || v === '') return undefined;
  if (!(KINDS as readonly string[]).includes(v)) throw new IrError('E_INPUT', `PARADIT_INJECT_FAULT=${v}: expected one of ${KINDS.join(', ')} (a test hook; unset it)`);
  return v as FaultKind;
}

const throwing: Pass = {
  name: 'inject-fault',
  description: 'throws a TypeError (test hook)',
  run: (m) => {
    const missing = (m.meta as unknown as Record<string, { x: number } | undefined>)['nothing-here'];
    return missing!.x > 0 ? m : m; // reads a property of undefined: a TypeError
  },
};

const invalid: Pass = {
  name: 'inject-fault',
  description: 'drops every node, keeping the outputs (test hook)',
  run: (m) => m.withGraph(new Graph(m.graph.inputs, [], m.graph.outputs, m.graph.name)),
};

/** Runs the injected fault on the fused module `m` (a no-op when PARADIT_INJECT_FAULT is unset). */
export function injectFault(m: Module): Module {
  const kind = wanted();
  if (kind === 'pass-throws') return runPipeline(m, [throwing], createPassContext());
  if (kind === 'pass-invalid-ir') return runPipeline(m, [invalid], createPassContext({ verify: true }));
  if (kind === 'rule-throws') {
    const first = m.graph.nodes[0];
    if (!first) return m;
    const rule = OPS[first.op] as { run: unknown };
    rule.run = () => {
      throw new TypeError('injected fault in the rule');
    };
    const inputs = m.graph.inputs.map((v) => Tensor.zeros(v.dtype, isStaticShape(v.shape) ? (v.shape as number[]) : v.shape.map((d) => (typeof d === 'number' ? d : 1))));
    interpret(m, inputs);
  }
  return m;
}
