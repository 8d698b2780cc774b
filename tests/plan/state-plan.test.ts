/**
 * State updated by a branch (X / X.next pairs): where safe, the branch writes the next state
 * straight into X's state buffer (state-in-place: no copies); where a region reads X while
 * computing X.next, the copies stay. Both plans match the interpreter's StepExecutor over steps
 * that alternate the branch.
 */
import { Tensor } from '@paradit/ir';
import { InterpreterStepExecutor, compareTensors } from '@paradit/runtime';
import { stateModule } from '../../packages/codegen-cuda/test/plan-models';
import { compilePlanDir } from './helpers';

describe.each([
  [false, 0],
  [true, 2],
])('state updated in a branch (then reads the state: %s)', (thenReadsState, copies) => {
  it(`matches the interpreter over 4 steps with ${copies} copies`, async () => {
    const m = stateModule(thenReadsState);
    const { backend, plan, compiled } = await compilePlanDir(m, 'f32');
    expect(plan.stats['copies']).toBe(copies);
    expect(plan.state.map((s) => s.name)).toEqual(['s']);
    const ref = new InterpreterStepExecutor(compiled.reference);
    for (const [step, c] of [1, 0, 1, 0].entries()) {
      const x = Tensor.from('f32', [4, 64], Array.from({ length: 256 }, (_, i) => Math.sin(i + step)));
      const ins = new Map([['x', x], ['c', Tensor.scalar('bool', c)]]);
      const want = await ref.step(ins);
      const got = await backend.step(ins);
      expect({ step, relL2: compareTensors(got.get('y')!, want.get('y')!).relL2 }).toEqual({ step, relL2: 0 });
    }
  });
});
