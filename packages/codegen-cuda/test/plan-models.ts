/** Small hand-built modules for the lowering and memory-planning tests. */
import { GraphBuilder, Module, Tensor } from '@paradit/ir';
import type { AttrValue, Value } from '@paradit/ir';

const f32 = (shape: number[]) => ({ dtype: 'f32' as const, shape });

/** x, c -> a = x+x; If c: (x*x + a) else (a - x); y = if + a; also a Reshape view of a read after the If. */
export function branchModule(): Module {
  const b = new GraphBuilder(18);
  const x = b.input('x', f32([4, 64]));
  const c = b.input('c', { dtype: 'bool', shape: [] });
  const [a] = b.add('Add', [x, x], {}, { name: 'a' });
  const tb = new GraphBuilder(18, b);
  const [t1] = tb.add('Mul', [x, x], {}, { name: 't1' });
  const [t2] = tb.add('Add', [t1!, a!], {}, { name: 't2' });
  const eb = new GraphBuilder(18, b);
  const [e1] = eb.add('Sub', [a!, x], {}, { name: 'e1' });
  const [r] = b.add('If', [c], { then_branch: { kind: 'graph', value: tb.build([t2!], 'then') }, else_branch: { kind: 'graph', value: eb.build([e1!], 'else') } }, { name: 'gate' });
  const [view] = b.add('Reshape', [a!, b.constant(Tensor.from('i64', [2], [64, 4]))], {}, { name: 'view' });
  const [y] = b.add('Add', [r!, x], {}, { name: 'y', outputNames: ['y'] });
  const [z] = b.add('Neg', [view!], {}, { name: 'z', outputNames: ['z'] });
  return new Module(b.build([y!, z!]), { '': 18 });
}


/**
 * A step with state `s` (input s, output s.next) updated by a branch: cond -> s.next = x*x + 1
 * (reads `s` only when `thenReadsState`: then s.next = s + x), else s.next = s (kept). y = s.next + x.
 */
export function stateModule(thenReadsState: boolean): Module {
  const b = new GraphBuilder(18);
  const x = b.input('x', f32([4, 64]));
  const c = b.input('c', { dtype: 'bool', shape: [] });
  const s = b.input('s', f32([4, 64]));
  const tb = new GraphBuilder(18, b);
  const [t] = thenReadsState ? tb.add('Add', [s, x], {}, { name: 'upd' }) : tb.add('Add', [tb.add('Mul', [x, x], {}, { name: 'sq' })[0]!, b.constant(Tensor.scalar('f32', 1))], {}, { name: 'upd' });
  const eb = new GraphBuilder(18, b);
  const [next] = b.add('If', [c], { then_branch: { kind: 'graph', value: tb.build([t!], 'then') }, else_branch: { kind: 'graph', value: eb.build([s], 'else') } }, { name: 'gate', outputNames: ['s.next'] });
  const [y] = b.add('Add', [next!, x], {}, { name: 'y', outputNames: ['y'] });
  return new Module(b.build([y!, next!]), { '': 18 });
}

/** f32 values in [-scale/2, scale/2) from a Park-Miller generator seeded with `seed` (per tensor). */
export function seededTensor(shape: number[], scale: number, seed: number): Tensor {
  let s = seed;
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from('f32', shape, Array.from({ length: n }, () => ((s = (s * 16807) % 2147483647) / 2147483647 - 0.5) * scale));
}

/**
 * Multi-head self-attention over x [1,S,N*H] as torch exports it: q,k,v MatMuls (weights seeded
 * 11, 12, 13) -> Reshape [1,S,N,H] -> Transpose to [1,N,S,H] -> softmax(q k^T / sqrt(H)) v ->
 * Transpose -> Reshape [1,S,N*H]. Returns that last value (named `outputName` when given).
 */
export function torchSelfAttention(b: GraphBuilder, x: Value, dims: { S: number; N: number; H: number }, outputName?: string): Value {
  const { S, N, H } = dims;
  const D = N * H;
  const ints = (v: number[]): AttrValue => ({ kind: 'ints', value: v });
  const heads = (i: number): Value => {
    const [l] = b.add('MatMul', [x, b.constant(seededTensor([D, D], 0.2, 11 + i))]);
    const [r] = b.add('Reshape', [l!, b.constant(Tensor.from('i64', [4], [1, S, N, H]))]);
    return b.add('Transpose', [r!], { perm: ints([0, 2, 1, 3]) })[0]!;
  };
  const [q, k, v] = [heads(0), heads(1), heads(2)];
  const [kt] = b.add('Transpose', [k], { perm: ints([0, 1, 3, 2]) });
  const [s] = b.add('Mul', [b.add('MatMul', [q, kt!])[0]!, b.constant(Tensor.scalar('f32', 1 / Math.sqrt(H)))]);
  const [p] = b.add('Softmax', [s!], { axis: { kind: 'int', value: -1 } });
  const [o] = b.add('MatMul', [p!, v]);
  const [t] = b.add('Transpose', [o!], { perm: ints([0, 2, 1, 3]) });
  return b.add('Reshape', [t!, b.constant(Tensor.from('i64', [3], [1, S, D]))], {}, outputName ? { outputNames: [outputName] } : {})[0]!;
}
