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
import { compileAndOpen } from '@paradit/compiler';
import { compileDenoiseStep } from '@paradit/passes';

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
    // r_ref and the residuals are updated in their state buffers (state-in-place): no end-of-step copies.
    const byId = new Map(plan.buffers.map((b) => [b.id, b]));
    const copiedIntoState = plan.program.filter((i) => i.op === 'copy' && byId.get(i.dst)!.space === 'state').map((i) => byId.get((i as { dst: number }).dst)!.name);
    expect(copiedIntoState.filter((n) => /r_ref|residual/.test(n))).toEqual([]);
    const ref = new InterpreterStepExecutor(compiled.reference);
    const base = tinyDitInputs();
    const names = m.graph.inputs.map((v) => v.name);
    let cachedSteps = 0;
    // compute, cached, cached, forced compute, cached: state written by both kinds of step is read by both.
    for (let step = 0; step < 5; step++) {
      const ins = new Map<string, Tensor>(names.map((n, i) => [n, base[i]!]));
      // Move the timestep a little so the diff is small but non-zero (a huge threshold caches), and
      // enough that a stale r_ref or residual would change the cached outputs.
      ins.set('timestep', Tensor.from('f32', [1], [0.5 + step * 0.05]));
      const compute = step === 0 || step === 3;
      for (const [k, v] of controls(step === 0 ? 0 : 10, compute)) ins.set(k, v);
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
      expect(got.get(FBCACHE_NAMES.cached)!.data[0]).toBe(compute ? 0 : 1);
      if (got.get(FBCACHE_NAMES.cached)!.data[0]) cachedSteps++;
    }
    expect(cachedSteps).toBe(3);
    const inBranch = (is: Plan['program']): Plan['program'] => is.flatMap((i) => (i.op === 'branch' ? [...i.then, ...i.else, ...inBranch(i.then), ...inBranch(i.else)] : []));
    const flash = inBranch(plan.program).filter((i) => i.op === 'kernel' && i.kernel.startsWith('paradit_attn_fwd'));
    expect(flash.length > 0).toBe(headDim === 64);
  });
});

describe('a step compiled by compileDenoiseStep (prepared) lowers as is', () => {
  it('compileAndOpen on the gated step: same outputs as the interpreter on it', async () => {
    const m = compileDenoiseStep(buildTinyDit(), { fbcache: true });
    const o = await compileAndOpen(m, { dtype: 'f32', backend: 'cpu', prepared: true });
    try {
      const ref = new InterpreterStepExecutor(m);
      const base = tinyDitInputs();
      const ins = new Map<string, Tensor>(buildTinyDit().graph.inputs.map((v, i) => [v.name, base[i]!]));
      for (const [k, v] of controls(0, true)) ins.set(k, v);
      const want = await ref.step(ins);
      const got = await o.executor.step(ins);
      expect(compareTensors(got.get('sample')!, want.get('sample')!).relL2).toBeLessThan(1e-6);
    } finally {
      o.dispose();
    }
  });
});
