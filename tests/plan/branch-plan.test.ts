/**
 * A plan with a branch, run on the CPU backend for both sides of the If: guards branch lowering
 * (regions, copies into the If's outputs) and memory planning across regions, with a view of a
 * value that lives across the If. The arena is poisoned before each step, so a region temporary
 * placed over a live value would give NaN or wrong numbers.
 */
import { Tensor, interpret } from '@paradit/ir';
import { compareTensors } from '@paradit/runtime';
import { branchModule } from '../../packages/codegen-cuda/test/plan-models';
import { compilePlanDir } from './helpers';

describe('branch plan on the CPU backend', () => {
  it.each([1, 0])('matches the interpreter with cond = %i', async (c) => {
    const m = branchModule();
    const { backend, plan } = await compilePlanDir(m, 'f32');
    expect(plan.stats['branches']).toBe(1);
    const x = Tensor.from('f32', [4, 64], Array.from({ length: 256 }, (_, i) => Math.sin(i)));
    const cond = Tensor.scalar('bool', c);
    const got = await backend.step(new Map([['x', x], ['c', cond]]));
    const want = interpret(m, [x, cond]);
    expect(compareTensors(got.get('y')!, want[0]!).relL2).toBe(0);
    expect(compareTensors(got.get('z')!, want[1]!).relL2).toBe(0);
  });
});
