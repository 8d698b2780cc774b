/**
 * canonicalize: a small Before/Expected, a must-not-fire case, the tiny DiT, and every model in
 * ../shared/fixtures: outputs within relative L2 1e-5 of the unoptimized model on the reference
 * interpreter (test_data_set_0 inputs), and no shape arithmetic left. flux-dev-2x4 has no weights:
 * it is loaded with seeded random weights and only its structure and pipeline time are checked.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Module, Node, Tensor, interpret, loadModel, readTensorFile } from '@paradit/ir';
import { PassReport, canonicalize, createPassContext, fixpointPass, runPipeline } from '@paradit/passes';
import { buildTinyDit, tinyDitInputs } from '../../../tests/models/tiny-dit';
import { expectIr, expectSameResults, ir, opCounts, relL2, runOne } from './helpers';

const REPO_ROOT = path.resolve(__dirname, '../../..');
const FIXTURES = path.resolve(REPO_ROOT, '../shared/fixtures');

describe('canonicalize', () => {
  test('Before/Expected: shape code, a no-op, a transpose pair and a duplicate all go', () => {
    const before = ir(`
      graph main(%x: f32[4,6]) {
        %zero = const i64[] [0]
        %ax = const i64[1] [0]
        %m1 = const i64[1] [-1]
        %s = Shape(%x)  # shape
        %d = Gather(%s, %zero) {axis=0}  # gather
        %u = Unsqueeze(%d, %ax)  # unsqueeze
        %t = Concat(%u, %m1) {axis=0}  # concat
        %r = Reshape(%x, %t)  # reshape_noop
        %c = Cast(%r) {to=1}  # cast_noop
        %n = ReduceProd(%s) {keepdims=1}  # numel
        %f = Reshape(%c, %n)  # flatten
        %t1 = Transpose(%x) {perm=[1, 0]}  # t1
        %t2 = Transpose(%t1) {perm=[1, 0]}  # t2
        %e1 = Exp(%t2)  # exp_a
        %e2 = Exp(%x)  # exp_b
        %y = Add(%e1, %e2)  # add
        return %f, %y
      }`);
    const after = runOne(canonicalize, before);
    expectIr(
      after,
      `graph main(%x: f32[4,6]) {
         %k = const i64[1] [24]
         %f = Reshape(%x, %k)
         %e = Exp(%x)
         %y = Add(%e, %e)
         return %f, %y
       }`,
    );
    expectSameResults(before, after, { tolerance: 'exact' });
  });

  test('must not fire: an already canonical graph comes back as the same object', () => {
    const m = ir(`
      graph main(%x: f32[4,6]) {
        %k = const i64[2] [6, 4]
        %r = Reshape(%x, %k)
        %t = Transpose(%r) {perm=[1, 0]}
        %y = Mul(%t, %x)
        return %y
      }`);
    expect(runOne(canonicalize, m)).toBe(m);
  });

  test('error: a pass list that never settles is reported with the passes still changing', () => {
    const flip = { name: 'flip', description: 'always makes a new module', run: (m: Module) => new Module(m.graph, m.opsets, m.meta) };
    const p = fixpointPass('never-settles', 'test', [flip]);
    expect(() => runPipeline(ir('graph main(%x: f32[2]) { return %x }'), [p], createPassContext({ options: { canonicalizeMaxRounds: 3 } }))).toThrow(
      /'never-settles' did not reach a fixpoint in 3 rounds: \[flip\] still changed the module/,
    );
  });

  test('tiny DiT: exact same outputs, and a second run changes nothing', () => {
    const m = buildTinyDit();
    const out = runOne(canonicalize, m);
    const inputs = tinyDitInputs();
    const want = interpret(m, inputs);
    const got = interpret(out, inputs);
    want.forEach((w, k) => expect(relL2(got[k]!, w)).toBe(0));
    expect(runOne(canonicalize, out)).toBe(out);
  });
});

/** Node kinds that must not survive canonicalization of a static-shape model. */
function shapeCode(m: Module): Node[] {
  return m.graph.nodes.filter((n) => {
    if (n.op === 'Shape' || n.op === 'Size' || n.op === 'ConstantOfShape') return true;
    // A shape-only Gather picks entries of a shape vector: small integer data.
    const data = n.inputs[0];
    return n.op === 'Gather' && !!data && (data.dtype === 'i64' || data.dtype === 'i32') && data.shape.length === 1;
  });
}

function readInputs(dir: string, m: Module): Tensor[] {
  return m.graph.inputs.map((_, k) => readTensorFile(path.join(dir, 'test_data_set_0', `input_${k}.pb`)));
}

describe('canonicalize on ../shared/fixtures', () => {
  const models = fs.existsSync(FIXTURES) ? fs.readdirSync(FIXTURES).filter((d) => fs.existsSync(path.join(FIXTURES, d, 'model.onnx'))).sort() : [];
  if (models.length === 0) {
    test.skip(`skipped: ${FIXTURES} is absent (fixture tests need ../shared beside the repo)`, () => undefined);
    return;
  }
  for (const name of models) {
    const dir = path.join(FIXTURES, name);
    const hasData = fs.existsSync(path.join(dir, 'test_data_set_0'));
    test(`${name}: ${hasData ? 'outputs within relative L2 1e-5, ' : 'random weights, structure only, '}no shape code left`, () => {
      const m = loadModel(dir, hasData ? {} : { randomWeights: { seed: 0 } });
      const report = new PassReport();
      const t0 = performance.now();
      const out = runPipeline(m, [canonicalize], createPassContext({ report }));
      const ms = performance.now() - t0;
      const before = opCounts(m);
      const after = opCounts(out);
      // eslint-disable-next-line no-console
      const fewer = Object.keys(before).filter((op) => (after[op] ?? 0) < before[op]!);
      console.log(
        `${name}: canonicalize ${ms.toFixed(0)} ms, ${m.graph.nodes.length} -> ${out.graph.nodes.length} nodes\n` +
          `  fewer: ${fewer.map((op) => `${op} ${before[op]}->${after[op] ?? 0}`).join(', ') || '(none)'}\n` +
          report.format(),
      );
      expect(shapeCode(out).map((n) => n.label)).toEqual([]);
      expect(runPipeline(out, [canonicalize], createPassContext({ verify: true }))).toBe(out);
      if (!hasData) return;
      const inputs = readInputs(dir, m);
      const want = interpret(m, inputs);
      const got = interpret(out, inputs);
      want.forEach((w, k) => {
        const e = relL2(got[k]!, w);
        // eslint-disable-next-line no-console
        console.log(`${name}: output ${k} relative L2 vs unoptimized ${e.toExponential(2)}`);
        expect(e).toBeLessThanOrEqual(1e-5);
      });
    });
  }
});
