/**
 * Attention lowering: bf16 with head dim 64 goes to the flash kernel with the head-split and
 * head-merge transposes folded into strides (no transpose kernels, launch strides by hand); fp32
 * (which the flash kernel does not take) is decomposed into two GEMMs around an fp32 softmax. Both
 * plans run on the CPU backend and match the interpreter.
 */
import { GraphBuilder, Module, Tensor, interpret } from '@paradit/ir';
import { compileModule } from '@paradit/compiler';
import type { LKernel } from '@paradit/codegen-cuda';
import { compareTensors } from '@paradit/runtime';
import { compilePlanDir } from '../../../tests/plan/helpers';
import { seededTensor, torchSelfAttention } from './plan-models';

const S = 16;
const N = 2;
const H = 64;
const D = N * H;


/** x [1,S,D] -> q,k,v linears -> [1,N,S,H] -> softmax attention -> [1,S,D] (as torch exports it). */
function attnModel(): Module {
  const b = new GraphBuilder(18);
  const x = b.input('x', { dtype: 'f32', shape: [1, S, D] });
  return new Module(b.build([torchSelfAttention(b, x, { S, N, H }, 'y')]), { '': 18 });
}

describe('attention lowering', () => {
  it('bf16, head dim 64: one flash kernel reading q/k/v out of [B,S,N,H] and writing [B,S,N,H]', async () => {
    const m = attnModel();
    const c = compileModule(m, { dtype: 'bf16' });
    const kernels = c.lowered.program.filter((i): i is LKernel => i.op === 'kernel');
    const flash = kernels.filter((k) => k.kernel.entry.startsWith('paradit_attn_fwd'));
    expect(flash).toHaveLength(1);
    const ops = flash[0]!.ref.nodes.map((n) => n.op);
    // The three head-split transposes and the head-merge transpose are folded into the kernel.
    expect(ops).toEqual(['Transpose', 'Transpose', 'Transpose', 'attention', 'Transpose']);
    const i64 = flash[0]!.kernel.args.filter((a) => a.kind === 'i64').map((a) => (a as { v: number }).v);
    // q, k, v, o strides (b, h, s) for [1,S,N,H] memory: S*N*H, H, N*H each.
    expect(i64).toEqual([0, 1, 2, 3].flatMap(() => [S * N * H, H, N * H]));
    expect(kernels.some((k) => !k.kernel.entry.startsWith('paradit_attn_fwd') && k.ref.nodes.some((n) => n.op === 'Transpose'))).toBe(false);
    const { backend } = await compilePlanDir(m, 'bf16');
    const x = seededTensor([1, S, D], 2, 3);
    const got = (await backend.step(new Map([['x', x]]))).get('y')!;
    expect(compareTensors(got, interpret(c.reference, [x])[0]!).relL2).toBeLessThan(1e-6);
    expect(compareTensors(got, interpret(m, [x])[0]!).relL2).toBeLessThan(3e-2);
  });

  it('fp32 is decomposed: no flash kernel, two more GEMMs, same result as the interpreter', async () => {
    const m = attnModel();
    const { compiled, backend, plan } = await compilePlanDir(m, 'f32');
    expect(plan.program.some((i) => i.op === 'kernel' && i.kernel.startsWith('paradit_attn_fwd'))).toBe(false);
    expect(plan.stats['gemms']).toBe(5);
    const x = seededTensor([1, S, D], 2, 5);
    const got = (await backend.step(new Map([['x', x]]))).get('y')!;
    expect(compareTensors(got, interpret(compiled.reference, [x])[0]!).relL2).toBeLessThan(1e-5);
  });

  it('flashAttention: false decomposes bf16 head-dim-64 attention too (same values as the flash plan within bf16 rounding)', async () => {
    const m = attnModel();
    const c = compileModule(m, { dtype: 'bf16', flashAttention: false });
    expect(c.lowered.program.some((i) => i.op === 'kernel' && i.kernel.entry.startsWith('paradit_attn_fwd'))).toBe(false);
    const { backend } = await compilePlanDir(m, 'bf16', { flashAttention: false });
    const x = seededTensor([1, S, D], 2, 3);
    const got = (await backend.step(new Map([['x', x]]))).get('y')!;
    expect(compareTensors(got, interpret(c.reference, [x])[0]!).relL2).toBeLessThan(1e-2);
  });
});
