/**
 * A First Block Cache plan (branch + state) on the CPU backend, step by step against the
 * interpreter's StepExecutor on the plan's reference module: guards branch lowering (regions,
 * copies into the If outputs), state buffers updated by the end-of-step copies, and memory planning
 * across branches (values live across the If must not be overwritten by a region's temporaries).
 */
import { Tensor } from '@paradit/ir';
import { InterpreterStepExecutor, compareTensors, FBCACHE_NAMES } from '@paradit/runtime';
import type { Plan } from '@paradit/runtime';
import { buildTinyDit, tinyDitInputs, TINY_DIT } from '../models/tiny-dit';
import { compilePlanDir } from './helpers';

const controls = (threshold: number, mustCompute: boolean): [string, Tensor][] => [
  [FBCACHE_NAMES.threshold, Tensor.scalar('f32', threshold)],
  [FBCACHE_NAMES.mustCompute, Tensor.scalar('bool', mustCompute ? 1 : 0)],
  [FBCACHE_NAMES.maxCached, Tensor.scalar('f32', Infinity)],
];

// headDim 64 in bf16 puts flash-attention kernels (with folded transposes) inside the branch.
describe.each([
  ['f32', 8],
  ['bf16', 8],
  ['bf16', 64],
] as const)('First Block Cache plan (%s, head dim %i)', (dtype, headDim) => {
  it('matches the interpreter step by step, through computed and cached steps', async () => {
    const m = buildTinyDit({ ...TINY_DIT, blocks: 3, headDim });
    const { compiled, backend, plan } = await compilePlanDir(m, dtype, { fbcache: true });
    expect(plan.stats['branches']).toBe(1);
    expect(plan.state.length).toBeGreaterThan(0);
    // The gate's block counts reach the executor (denoise reports skipped blocks from them).
    expect(backend.blocks).toEqual(new InterpreterStepExecutor(compiled.reference).blocks);
    expect(backend.blocks!.total).toBe(3);
    const ref = new InterpreterStepExecutor(compiled.reference);
    const base = tinyDitInputs();
    const names = m.graph.inputs.map((v) => v.name);
    let cachedSteps = 0;
    for (let step = 0; step < 4; step++) {
      const ins = new Map<string, Tensor>(names.map((n, i) => [n, base[i]!]));
      // Nudge the timestep a little so the diff is small but non-zero; a huge threshold caches.
      ins.set('timestep', Tensor.from('f32', [1], [0.5 + step * 1e-4]));
      for (const [k, v] of controls(step === 0 ? 0 : 10, step === 0)) ins.set(k, v);
      const want = await ref.step(ins);
      const got = await backend.step(ins);
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [k, t] of want) {
        const c = compareTensors(got.get(k)!, t);
        // diff is a relative change of two nearly equal tensors: in bf16 compare it absolutely.
        // (step 0 has no r_ref yet: diff is meaningless there.)
        if (k === FBCACHE_NAMES.diff && dtype === 'bf16') {
          if (step > 0) expect(Math.abs(got.get(k)!.data[0]! - t.data[0]!)).toBeLessThan(0.05);
          continue;
        }
        // bf16: the plan runs decomposed attention (head dim 8 is not a flash size), so it rounds
        // probabilities once more than the fused reference op.
        expect({ k, step, ok: c.relL2 <= (dtype === 'f32' ? 1e-6 : 1e-2) }).toEqual({ k, step, ok: true });
      }
      if (got.get(FBCACHE_NAMES.cached)!.data[0]) cachedSteps++;
    }
    expect(cachedSteps).toBe(3);
    const inBranch = (is: Plan['program']): Plan['program'] => is.flatMap((i) => (i.op === 'branch' ? [...i.then, ...i.else, ...inBranch(i.then), ...inBranch(i.else)] : []));
    const flash = inBranch(plan.program).filter((i) => i.op === 'kernel' && i.kernel.startsWith('paradit_attn_fwd'));
    expect(flash.length > 0).toBe(headDim === 64);
  });
});
