/**
 * A well-formedness check of a lowered program, run after lowering: every value an instruction
 * reads (its kernel args, gemm operands and ref inputs) was defined before it, as a step input,
 * a constant, state, the output of an earlier instruction, or a view of one of these. Catches an
 * emitter that reads a value no kernel writes (which would read stale arena bytes on a GPU) at
 * compile time, with the instruction and the ONNX nodes named. One exception: an instruction may
 * read bytes of the buffer it writes itself (an in-place update such as a Concat piece).
 */
import type { Value } from '@paradit/ir';
import type { LInstr, LoweredProgram } from './program';
import { instrUses } from '../memory-plan';
import { instrOrigin } from './lower-graph';

export class ProgramError extends Error {
  override readonly name = 'ProgramError';
}

export function checkProgram(lp: LoweredProgram): void {
  const defined = new Set<Value>([...lp.inputs.map((x) => x.value), ...lp.state.map((s) => s.input)]);
  const isDefined = (v: Value, d: ReadonlySet<Value>): boolean => {
    for (let cur: Value | undefined = v, i = 0; cur && i < 10000; i++) {
      if (cur.constant || d.has(cur)) return true;
      cur = lp.aliases.get(cur)?.of;
    }
    return false;
  };
  const root = (v: Value): Value => {
    let cur = v;
    for (let i = 0; i < 10000; i++) {
      const a = lp.aliases.get(cur);
      if (!a) return cur;
      cur = a.of;
    }
    return cur;
  };
  const walk = (instrs: readonly LInstr[], d: Set<Value>): void => {
    for (const i of instrs) {
      const { reads, writes } = instrUses(i);
      // A read of the buffer the instruction itself writes is an in-place update (a piece of a
      // Concat built in place, concat-in-place.ts: its ref passes the other pieces through).
      const own = new Set(writes.map(root));
      for (const v of reads) {
        if (!isDefined(v, d) && !own.has(root(v))) {
          const what = i.op === 'kernel' ? `kernel '${i.kernel.entry}'` : i.op;
          throw new ProgramError(`${what} (from ${instrOrigin(i).join(', ')}) reads value '${v.name || v.id}' (${v.dtype}[${v.shape.join(',')}]), which no earlier instruction writes; the fragment emitter must list it in some kernel's writes or aliases`);
        }
      }
      writes.forEach((v) => d.add(v));
      if (i.op === 'branch') {
        walk(i.then, new Set(d));
        walk(i.else, new Set(d));
        i.node.outputs.forEach((v) => d.add(v));
      }
    }
  };
  walk(lp.program, defined);
}
