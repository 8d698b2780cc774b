/**
 * state-in-place: a state value X whose next value X.next is an output of a top-level branch gets
 * that branch output placed in X's own state buffer, when that is safe, so neither the region that
 * keeps X (`X.next = X`, a copy X -> X.next) nor the end of the step (X.next -> X) copies it. For
 * First Block Cache this removes the per-step round trips of r_ref and the residuals (tens of MB
 * each on FLUX).
 *
 * Safe when, after the branch starts, nothing reads X except regions that keep X unchanged:
 *   - no top-level instruction after the branch reads X (or a view of it);
 *   - every region either returns X itself for that output (its copy is dropped: no write), or
 *     does not read X at all (it may then write X.next, i.e. X, at any point).
 *
 *   before: branch { then: copy X -> Xn ; else: ... copy v -> Xn } ; copy Xn -> X
 *   after:  Xn is a view of X;  branch { then: (nothing) ; else: ... copy v -> X }
 */
import type { Value } from '@paradit/ir';
import type { LAlias, LBranch, LInstr, LStatePair } from './program';
import { instrUses } from '../memory-plan';

function rootOf(v: Value, aliases: ReadonlyMap<Value, LAlias>): Value {
  let cur = v;
  for (let a = aliases.get(cur), i = 0; a && i < 10000; a = aliases.get(cur), i++) cur = a.of;
  return cur;
}

function reads(instrs: readonly LInstr[], x: Value, aliases: ReadonlyMap<Value, LAlias>): boolean {
  return instrs.some((i) => instrUses(i).reads.some((v) => rootOf(v, aliases) === x) || (i.op === 'branch' && (reads(i.then, x, aliases) || reads(i.else, x, aliases))));
}

/**
 * Rewrites `program` (top level) and `aliases` in place for every state pair that qualifies;
 * returns the pairs whose end-of-step copy is gone.
 */
export function placeStateInPlace(program: LInstr[], aliases: Map<Value, LAlias>, state: readonly LStatePair[]): Set<LStatePair> {
  const done = new Set<LStatePair>();
  for (const p of state) {
    const x = p.input;
    const k = program.findIndex((i) => i.op === 'branch' && i.node.outputs.includes(p.next));
    if (k < 0 || aliases.has(p.next) || p.next.dtype !== x.dtype) continue;
    const b = program[k] as LBranch;
    const j = b.node.outputs.indexOf(p.next);
    const after = program.slice(k + 1).filter((i) => !(i.op === 'copy' && i.src === p.next && i.dst === x));
    if (reads(after, x, aliases)) continue;
    const regions = [b.then, b.else].map((instrs) => {
      const keep = instrs.find((i) => i.op === 'copy' && i.dst === p.next && i.src === x);
      return { instrs, keep };
    });
    const graphs = ['then_branch', 'else_branch'].map((key) => {
      const a = b.node.attrs[key];
      return a?.kind === 'graph' ? a.value : undefined;
    });
    const ok = regions.every((r, n) => (graphs[n]?.outputs[j] === x ? r.keep !== undefined : !reads(r.instrs, x, aliases)));
    if (!ok) continue;
    aliases.set(p.next, { of: x, byteOffset: 0 });
    for (const r of regions) {
      if (!r.keep) continue;
      const list = r.instrs as LInstr[];
      list.splice(list.indexOf(r.keep), 1);
    }
    const end = program.findIndex((i) => i.op === 'copy' && i.src === p.next && i.dst === x);
    if (end >= 0) program.splice(end, 1);
    done.add(p);
  }
  return done;
}
