/**
 * specialize-shapes: symbolic input dims bound by --shape (or test data) give every value a static
 * shape; wrong or missing bindings are refused with the fix named.
 */
import { GraphBuilder, Module, Tensor, interpret, isStaticShape } from '@paradit/ir';
import { parseShapeOption, specializeShapes } from '@paradit/codegen-cuda';
import { compileModule } from '@paradit/compiler';
import { compareTensors } from '@paradit/runtime';
import { compilePlanDir } from '../../../tests/plan/helpers';

/** x [B,S,8] -> Reshape to [B*S, 8] via Shape arithmetic -> linear -> back to [B,S,4]. */
function symbolic(): Module {
  const b = new GraphBuilder(18);
  const x = b.input('x', { dtype: 'f32', shape: ['B', 'S', 8] });
  const [shape] = b.add('Shape', [x]);
  const [bs] = b.add('Slice', [shape!, b.constant(Tensor.from('i64', [1], [0])), b.constant(Tensor.from('i64', [1], [2]))]);
  const [flat] = b.add('Reshape', [x, b.constant(Tensor.from('i64', [2], [-1, 8]))]);
  const [l] = b.add('linear', [flat!, b.constant(Tensor.from('f32', [8, 4], Array.from({ length: 32 }, (_, i) => (i % 7) / 7 - 0.4)))], { transB: { kind: 'int', value: 0 } });
  const [outShape] = b.add('Concat', [bs!, b.constant(Tensor.from('i64', [1], [4]))], { axis: { kind: 'int', value: 0 } });
  const [y] = b.add('Reshape', [l!, outShape!], {}, { outputNames: ['y'] });
  return new Module(b.build([y!]), { '': 18 });
}

describe('specialize-shapes', () => {
  it('binds B,S from --shape: every value static, and the plan computes what the interpreter does', async () => {
    const m = symbolic();
    const spec = specializeShapes(m, parseShapeOption(['x=2,3,8']));
    for (const n of spec.graph.nodes) for (const o of n.outputs) expect(isStaticShape(o.shape)).toBe(true);
    expect(spec.graph.outputs[0]!.shape).toEqual([2, 3, 4]);
    const { backend } = await compilePlanDir(m, 'f32', { shapes: parseShapeOption(['x=2,3,8']) });
    const x = Tensor.from('f32', [2, 3, 8], Array.from({ length: 48 }, (_, i) => Math.cos(i)));
    expect(compareTensors((await backend.step(new Map([['x', x]]))).get('y')!, interpret(m, [x])[0]!).relL2).toBeLessThan(1e-6);
  });

  it('refuses a missing binding, a wrong rank or a fixed dim that differs, naming the flag', () => {
    expect(() => compileModule(symbolic(), { dtype: 'f32' })).toThrow(/input 'x' has symbolic dims \[B,S,8\] and no size was given; pass --shape x=/);
    expect(() => specializeShapes(symbolic(), parseShapeOption(['x=2,3']))).toThrow(/--shape x=2,3: the model declares f32\[B,S,8\]/);
    expect(() => specializeShapes(symbolic(), parseShapeOption(['x=2,3,9']))).toThrow(/equal to the fixed ones/);
    expect(() => parseShapeOption(['x:2,3'])).toThrow(/expected name=d0,d1/);
  });
});
