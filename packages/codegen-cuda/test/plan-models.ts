/** Small hand-built modules for the lowering and memory-planning tests. */
import { GraphBuilder, Module, Tensor } from '@paradit/ir';

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
