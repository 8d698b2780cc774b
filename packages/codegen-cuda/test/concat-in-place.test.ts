/**
 * Concat in place (lower/concat-in-place.ts): a FLUX single block concatenates the attention
 * output and the MLP GEMM's output along the last axis before proj_out. The writers must store
 * straight into the Concat's buffer (GEMM: element offset + leading dimension; attention: output
 * strides) and no kernel may copy the pieces. Guards against: the copy kernel coming back, a
 * writer's piece landing in the wrong columns (numeric check of the CPU plan, whose refs
 * read-modify-write the shared buffer), and the memory planner reusing the Concat's bytes between
 * its first writer and its reader (numeric check, poisoned arena).
 */
import { GraphBuilder, Module, Tensor, interpret } from '@paradit/ir';
import { compileModule } from '@paradit/compiler';
import type { LGemm, LKernel } from '@paradit/codegen-cuda';
import { compareTensors } from '@paradit/runtime';
import { compilePlanDir } from '../../../tests/plan/helpers';
import { seededTensor, torchSelfAttention } from './plan-models';

const S = 16;
const N = 2;
const H = 64;
const D = N * H;
const F = 3 * D; // MLP width


/**
 * x [1,S,D] -> attention over q,k,v linears -> [1,S,D]; x -> MatMul [D,F] -> m [1,S,F];
 * Concat(order) on the last axis -> MatMul [D+F, D] -> y. `extraReader` also returns m (so the
 * MLP output escapes and the Concat must stay a kernel).
 */
function singleBlock(order: 'attn-first' | 'mlp-first', extraReader = false): Module {
  const b = new GraphBuilder(18);
  const x = b.input('x', { dtype: 'f32', shape: [1, S, D] });
  const a = torchSelfAttention(b, x, { S, N, H });
  const [m] = b.add('MatMul', [x, b.constant(seededTensor([D, F], 0.2, 21))], {}, { outputNames: ['m'] });
  const parts = order === 'attn-first' ? [a!, m!] : [m!, a!];
  const [cat] = b.add('Concat', parts, { axis: { kind: 'int', value: -1 } });
  const [y] = b.add('MatMul', [cat!, b.constant(seededTensor([D + F, D], 0.2, 31))], {}, { outputNames: ['y'] });
  return new Module(b.build(extraReader ? [y!, m!] : [y!]), { '': 18 });
}

/** Relative L2 (Infinity when NaNs differ: unwritten bytes are NaN). */
const relL2 = (got: Tensor, want: Tensor): number => compareTensors(got, want).relL2;

const concatKernels = (c: ReturnType<typeof compileModule>): LKernel[] =>
  c.lowered.program.filter((i): i is LKernel => i.op === 'kernel' && !i.kernel.entry.startsWith('paradit_attn_fwd') && i.ref.nodes.some((n) => n.op === 'Concat'));

describe('concat in place', () => {
  it.each(['attn-first', 'mlp-first'] as const)('%s: GEMM and attention write their pieces into the Concat buffer; no copy kernel; CPU plan matches the interpreter', async (order) => {
    const m = singleBlock(order);
    const c = compileModule(m, { dtype: 'bf16', verify: true });
    expect(concatKernels(c)).toHaveLength(0);
    const gemms = c.lowered.program.filter((i): i is LGemm => i.op === 'gemm');
    const mlp = gemms.find((g) => g.n === F)!;
    const proj = gemms.find((g) => g.k === D + F)!;
    const c0 = order === 'attn-first' ? D : 0;
    // The MLP GEMM writes columns [c0, c0 + F) of the [S, D+F] Concat, which proj_out reads.
    expect({ value: mlp.out.value, elemOffset: mlp.out.elemOffset, cols: mlp.out.cols, ld: mlp.out.ld }).toEqual({ value: proj.a.value, elemOffset: c0, cols: F, ld: D + F });
    const flash = c.lowered.program.find((i): i is LKernel => i.op === 'kernel' && i.kernel.entry.startsWith('paradit_attn_fwd'))!;
    const i64 = flash.kernel.args.filter((x) => x.kind === 'i64').map((x) => (x as { v: number }).v);
    // o strides (b, h, s): one Concat row per token.
    expect(i64.slice(-3)).toEqual([S * (D + F), H, D + F]);
    const o = flash.kernel.writes[0]!;
    const alias = c.lowered.aliases.get(o);
    if (order === 'attn-first') expect(o).toBe(proj.a.value);
    else expect(alias).toEqual({ of: proj.a.value, byteOffset: F * 2 });
    // The memory plan puts the attention pointer at the piece's first column of the same bytes.
    expect(c.memory.buffers.get(o)!.offset).toBe(c.memory.buffers.get(proj.a.value)!.offset + (order === 'attn-first' ? 0 : F * 2));

    const { backend } = await compilePlanDir(m, 'bf16');
    const x = seededTensor([1, S, D], 2, 3);
    const outs = await backend.step(new Map([['x', x]]));
    const got = [...outs.values()][0]!; // y (the dtype policy's output cast renames it)
    expect(relL2(got, interpret(c.reference, [x])[0]!)).toBeLessThan(1e-6);
    expect(relL2(got, interpret(m, [x])[0]!)).toBeLessThan(3e-2);
  });

  it('must not fire when a piece has another reader (the MLP output is also a graph output)', async () => {
    const m = singleBlock('attn-first', true);
    const c = compileModule(m, { dtype: 'bf16', verify: true });
    expect(concatKernels(c)).toHaveLength(1);
    const mlp = c.lowered.program.find((i): i is LGemm => i.op === 'gemm' && i.n === F)!;
    expect([mlp.out.elemOffset, mlp.out.ld]).toEqual([0, F]);
    const { backend } = await compilePlanDir(m, 'bf16');
    const x = seededTensor([1, S, D], 2, 4);
    const outs = await backend.step(new Map([['x', x]]));
    const got = [...outs.values()][0]!; // y (the dtype policy's output cast renames it)
    expect(relL2(got, interpret(c.reference, [x])[0]!)).toBeLessThan(1e-6);
  });

  it('must not fire for fp32 plans (decomposed attention is no flash writer)', () => {
    const c = compileModule(singleBlock('attn-first'), { dtype: 'f32', verify: true });
    expect(concatKernels(c)).toHaveLength(1);
  });
});
