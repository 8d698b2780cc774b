/**
 * lower-collectives: all_to_all / all_gather in their contiguous plan forms (with the layout that
 * costs the fewest copies), token reorders as Gathers, lse_merge as fp32 arithmetic; values equal
 * to the input module's on simulated ranks (all_to_all, all_gather, reorders: bit-identical;
 * lse_merge within 1e-6 relative L2).
 */
import { GraphBuilder, Module, Tensor, makeMesh, simulateRanks } from '@paradit/ir';
import type { AttrValue, Value } from '@paradit/ir';
import { canonicalize, createPassContext, runPipeline } from '@paradit/passes';
import { compareTensors } from '@paradit/runtime';
import { lowerCollectives } from '../src/lower/lower-collectives';

const int = (value: number): AttrValue => ({ kind: 'int', value });
const ints = (value: number[]): AttrValue => ({ kind: 'ints', value });
const str = (value: string): AttrValue => ({ kind: 'string', value });
const u2 = { meshAxis: str('ulysses'), groupSize: int(2) };
const mesh = makeMesh({ ulysses: 2 });

function moduleOf(build: (b: GraphBuilder) => Value[]): Module {
  const b = new GraphBuilder(18);
  return new Module(b.build(build(b)), { '': 18 });
}

function iota(shape: number[]): Tensor {
  const n = shape.reduce((a, d) => a * d, 1);
  return Tensor.from('f32', shape, Array.from({ length: n }, (_, i) => (i * 7919) % 101 / 10 - 5));
}

/** lowerCollectives then canonicalize, as compile runs them. */
function lowered(m: Module): Module {
  return runPipeline(lowerCollectives(m), [canonicalize], createPassContext({ verify: true }));
}

/** Both modules on simulated ranks: every rank's outputs equal. */
function expectSameOnRanks(a: Module, b: Module, inputs: Tensor[], tol = 0): void {
  const ra = simulateRanks(a, mesh, inputs);
  const rb = simulateRanks(b, mesh, inputs);
  ra.forEach((outs, rank) =>
    outs.forEach((t, k) => {
      const c = compareTensors(rb[rank]![k]!, t);
      if (tol === 0) expect(Array.from(rb[rank]![k]!.data)).toEqual(Array.from(t.data));
      else expect(c.relL2).toBeLessThan(tol);
    }),
  );
}

const ops = (m: Module): string[] => m.graph.nodes.map((n) => n.op);
const a2a = (m: Module) => m.graph.nodes.filter((n) => n.op === 'all_to_all');

describe('lower-collectives', () => {
  it('Ulysses q feeding attention: exchanges token-major chunks, the unpack is a view and a head swap the attention folds', () => {
    // x [1, N=4, S=3, H=8] per rank: split heads (axis 1), gather tokens (axis 2).
    const m = moduleOf((b) => {
      const x = b.input('x', { dtype: 'f32', shape: [1, 4, 6, 8] });
      const [xs] = b.add('shard_slice', [x], { ...u2, axis: int(2) }, { name: 'slice' });
      const [q] = b.add('Sin', [xs!], {}, { name: 'producer' });
      const [e] = b.add('all_to_all', [q!], { ...u2, splitAxis: int(1), concatAxis: int(2) }, { name: 'q_a2a' });
      const [o] = b.add('attention', [e!, e!, e!], { scale: { kind: 'float', value: 0.35 }, numHeads: int(2), kvHeads: int(2) }, { name: 'attn' });
      return [b.add('all_to_all', [o!], { ...u2, splitAxis: int(2), concatAxis: int(1) }, { name: 'o_a2a' })[0]!];
    });
    const out = lowered(m);
    for (const n of a2a(out)) {
      expect(n.attrs['splitAxis']).toEqual(int(0));
      expect(n.attrs['concatAxis']).toEqual(int(0));
      expect(n.inputs[0]!.shape[0]).toBe(2);
    }
    // The q exchange hands attention a head swap of a view of the receive buffer (foldable).
    const attn = out.graph.nodes.find((n) => n.op === 'attention')!;
    const qProducer = out.graph.nodes.find((n) => n.outputs.includes(attn.inputs[0]!))!;
    expect(qProducer.op).toBe('Transpose');
    expect(qProducer.attrs['perm']).toEqual(ints([0, 2, 1, 3]));
    expectSameOnRanks(m, out, [iota([1, 4, 6, 8])]);
  });

  it('all_gather along an inner axis gathers along axis 0 and moves the parts into place', () => {
    const m = moduleOf((b) => {
      const x = b.input('x', { dtype: 'f32', shape: [2, 6, 3] });
      const [xs] = b.add('shard_slice', [x], { ...u2, axis: int(1) });
      return [b.add('all_gather', [xs!], { ...u2, axis: int(1) }, { name: 'gather' })[0]!];
    });
    const out = lowered(m);
    const g = out.graph.nodes.find((n) => n.op === 'all_gather')!;
    expect(g.attrs['axis']).toEqual(int(0));
    expect(ops(out)).toContain('Transpose');
    expectSameOnRanks(m, out, [iota([2, 6, 3])]);
  });

  it('must not fire: contiguous collectives and modules without context-parallel ops stay as they are', () => {
    const m = moduleOf((b) => {
      const x = b.input('x', { dtype: 'f32', shape: [1, 6, 4] });
      const [xs] = b.add('shard_slice', [x], { ...u2, axis: int(1) });
      return [b.add('all_gather', [xs!], { ...u2, axis: int(1) }, { name: 'gather' })[0]!];
    });
    const out = lowered(m);
    expect(ops(out)).toEqual(['shard_slice', 'all_gather']);
    const plain = moduleOf((b) => [b.add('Relu', [b.input('x', { dtype: 'f32', shape: [3] })])[0]!]);
    expect(lowerCollectives(plain)).toBe(plain);
  });

  it('to_token_order with padding reads a fill row; from_token_order drops it; both are Gathers', () => {
    const m = moduleOf((b) => {
      const x = b.input('x', { dtype: 'f32', shape: [1, 5, 2] });
      const [t] = b.add('to_token_order', [x], { axis: int(1), segments: ints([2, 3]), chunks: int(2), fill: { kind: 'float', value: -1 } }, { name: 'order' });
      const [back] = b.add('from_token_order', [t!], { axis: int(1), segments: ints([2, 3]), chunks: int(2) }, { name: 'back' });
      return [t!, back!];
    });
    const out = lowered(m);
    expect(ops(out).filter((o) => o === 'Gather')).toHaveLength(2);
    expect(ops(out)).not.toContain('to_token_order');
    expectSameOnRanks(m, out, [iota([1, 5, 2])]);
  });

  it('lse_merge becomes fp32 arithmetic equal to the op, fully masked partials included', () => {
    const m = moduleOf((b) => {
      const o1 = b.input('o1', { dtype: 'f32', shape: [1, 2, 3, 4] });
      const l1 = b.input('l1', { dtype: 'f32', shape: [1, 2, 3] });
      const o2 = b.input('o2', { dtype: 'f32', shape: [1, 2, 3, 4] });
      const l2 = b.input('l2', { dtype: 'f32', shape: [1, 2, 3] });
      return b.add('lse_merge', [o1, l1, o2, l2], {}, { name: 'merge', numOutputs: 2 });
    });
    const out = lowered(m);
    expect(ops(out)).not.toContain('lse_merge');
    const lse1 = Tensor.from('f32', [1, 2, 3], [0.5, -Infinity, 2, -Infinity, 1, 3]);
    const lse2 = Tensor.from('f32', [1, 2, 3], [1.5, 0.25, -Infinity, -Infinity, 1, -2]);
    const z = (k: number) => (k % 8 === 4 || k % 8 === 5 ? 0 : 1); // masked partials hold zeros
    const o1 = Tensor.from('f32', [1, 2, 3, 4], Array.from({ length: 24 }, (_, i) => z(Math.floor(i / 4) * 2) * ((i % 5) - 2)));
    const o2 = Tensor.from('f32', [1, 2, 3, 4], Array.from({ length: 24 }, (_, i) => (i % 3) - 1));
    expectSameOnRanks(m, out, [o1, lse1, o2, lse2], 1e-6);
    // The row where both partials are fully masked stays finite: o = 0, lse = -inf.
    const [o, lse] = simulateRanks(out, mesh, [o1, lse1, o2, lse2])[0]!;
    expect(Array.from(o!.data.slice(12, 16), Math.abs)).toEqual([0, 0, 0, 0]);
    expect(lse!.data[3]).toBe(-Infinity);
  });

  it('refuses symbolic shapes with a message naming the value', () => {
    const m = moduleOf((b) => {
      const x = b.input('x', { dtype: 'f32', shape: [1, 4, 'seq', 8] });
      return [b.add('all_to_all', [x], { ...u2, splitAxis: int(1), concatAxis: int(2) }, { name: 'q_a2a' })[0]!];
    });
    expect(() => lowerCollectives(m)).toThrow(/value 'x' has a symbolic shape \[1,4,seq,8\]; sharded plans need static shapes/);
  });
});
