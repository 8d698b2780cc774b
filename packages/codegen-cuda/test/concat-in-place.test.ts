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
import type { AttrValue, Value } from '@paradit/ir';
import { compileModule } from '@paradit/codegen-cuda';
import type { LGemm, LKernel } from '@paradit/codegen-cuda';
import { compareTensors } from '@paradit/runtime';
import { compilePlanDir } from '../../../tests/plan/helpers';

const S = 16;
const N = 2;
const H = 64;
const D = N * H;
const F = 3 * D; // MLP width

function rnd(shape: number[], scale: number, s0: number): Tensor {
  let s = s0;
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from('f32', shape, Array.from({ length: n }, () => ((s = (s * 16807) % 2147483647) / 2147483647 - 0.5) * scale));
}

/**
 * x [1,S,D] -> attention over q,k,v linears -> [1,S,D]; x -> MatMul [D,F] -> m [1,S,F];
 * Concat(order) on the last axis -> MatMul [D+F, D] -> y. `extraReader` also returns m (so the
 * MLP output escapes and the Concat must stay a kernel).
 */
function singleBlock(order: 'attn-first' | 'mlp-first', extraReader = false): Module {
  const b = new GraphBuilder(18);
  const ints = (v: number[]): AttrValue => ({ kind: 'ints', value: v });
  const x = b.input('x', { dtype: 'f32', shape: [1, S, D] });
  const heads = (i: number): Value => {
    const [l] = b.add('MatMul', [x, b.constant(rnd([D, D], 0.2, 11 + i))]);
    const [r] = b.add('Reshape', [l!, b.constant(Tensor.from('i64', [4], [1, S, N, H]))]);
    return b.add('Transpose', [r!], { perm: ints([0, 2, 1, 3]) })[0]!;
  };
  const [q, k, v] = [heads(0), heads(1), heads(2)];
  const [kt] = b.add('Transpose', [k], { perm: ints([0, 1, 3, 2]) });
  const [s] = b.add('Mul', [b.add('MatMul', [q, kt!])[0]!, b.constant(Tensor.scalar('f32', 1 / Math.sqrt(H)))]);
  const [p] = b.add('Softmax', [s!], { axis: { kind: 'int', value: -1 } });
  const [o] = b.add('MatMul', [p!, v]);
  const [t] = b.add('Transpose', [o!], { perm: ints([0, 2, 1, 3]) });
  const [a] = b.add('Reshape', [t!, b.constant(Tensor.from('i64', [3], [1, S, D]))]);
  const [m] = b.add('MatMul', [x, b.constant(rnd([D, F], 0.2, 21))], {}, { outputNames: ['m'] });
  const parts = order === 'attn-first' ? [a!, m!] : [m!, a!];
  const [cat] = b.add('Concat', parts, { axis: { kind: 'int', value: -1 } });
  const [y] = b.add('MatMul', [cat!, b.constant(rnd([D + F, D], 0.2, 31))], {}, { outputNames: ['y'] });
  return new Module(b.build(extraReader ? [y!, m!] : [y!]), { '': 18 });
}

/** Relative L2, NaN when NaNs differ (compareTensors counts those apart: unwritten bytes are NaN). */
function relL2(got: Tensor, want: Tensor): number {
  const c = compareTensors(got, want);
  return c.nanMismatch > 0 ? NaN : c.relL2;
}

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
    const x = rnd([1, S, D], 2, 3);
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
    const x = rnd([1, S, D], 2, 4);
    const outs = await backend.step(new Map([['x', x]]));
    const got = [...outs.values()][0]!; // y (the dtype policy's output cast renames it)
    expect(relL2(got, interpret(c.reference, [x])[0]!)).toBeLessThan(1e-6);
  });

  it('must not fire for fp32 plans (decomposed attention is no flash writer)', () => {
    const c = compileModule(singleBlock('attn-first'), { dtype: 'f32', verify: true });
    expect(concatKernels(c)).toHaveLength(1);
  });
});
