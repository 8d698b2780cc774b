/**
 * The memory planner: arena placement (no two simultaneously-live buffers share bytes, 256-byte
 * alignment, reuse of freed blocks, best fit) and whole-program planning (views extend their base's
 * lifetime; values live across a branch survive both regions; io/weights/state never share the arena).
 */
import { Value } from '@paradit/ir';
import { branchModule } from './plan-models';
import { ALIGNMENT, emitFragmentStub, lowerModule, planArena, planMemory } from '@paradit/codegen-cuda';
import type { LiveRange, MemoryPlan } from '@paradit/codegen-cuda';

function overlaps(a: LiveRange, b: LiveRange, off: ReadonlyMap<number, number>): boolean {
  const live = a.start <= b.end && b.start <= a.end;
  const oa = off.get(a.id)!;
  const ob = off.get(b.id)!;
  const bytes = oa < ob + Math.max(b.bytes, 1) && ob < oa + Math.max(a.bytes, 1);
  return live && bytes;
}

describe('planArena', () => {
  it('never overlaps simultaneously-live ranges, aligns every offset, and stays within the peak (random)', () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let trial = 0; trial < 30; trial++) {
      const ranges: LiveRange[] = [];
      for (let i = 0; i < 60; i++) {
        const start = rand(100);
        ranges.push({ id: i, bytes: 1 + rand(5000), start, end: start + rand(20) });
      }
      const p = planArena(ranges);
      expect(ranges.filter((r) => p.offsets.get(r.id)! % ALIGNMENT !== 0 || p.offsets.get(r.id)! + r.bytes > p.peak)).toEqual([]);
      const bad: string[] = [];
      for (let i = 0; i < ranges.length; i++) for (let j = i + 1; j < ranges.length; j++) if (overlaps(ranges[i]!, ranges[j]!, p.offsets)) bad.push(`${i}/${j}`);
      expect(bad).toEqual([]);
      // Reuse happened: the peak is below the sum of all sizes.
      expect(p.peak).toBeLessThan(ranges.reduce((s, r) => s + Math.ceil(r.bytes / 256) * 256, 0));
    }
  });

  it('reuses the bytes of a dead buffer: a chain of 3 values needs 2 slots, not 3', () => {
    // a (t0..t1) -> b (t1..t2) -> c (t2..t3): a and c never live together.
    const p = planArena([
      { id: 0, bytes: 1000, start: 0, end: 1 },
      { id: 1, bytes: 1000, start: 1, end: 2 },
      { id: 2, bytes: 1000, start: 2, end: 3 },
    ]);
    expect(p.peak).toBe(2 * 1024);
    expect(p.offsets.get(2)).toBe(p.offsets.get(0));
  });

  it('a value born at the instruction where another dies does not take its bytes (no in-place)', () => {
    const p = planArena([
      { id: 0, bytes: 256, start: 0, end: 1 },
      { id: 1, bytes: 256, start: 1, end: 2 },
    ]);
    expect(p.offsets.get(0)).not.toBe(p.offsets.get(1));
  });

  it('picks the smallest free block that fits (best fit)', () => {
    // Free at t=3: a 512-byte hole (id 1) and a 2048-byte hole (id 3); a 300-byte request takes the 512 one.
    // Born one per step, so they are laid out in id order: 0 | 1 (512) | 2 | 3 (2048) | 4.
    const p = planArena([
      { id: 0, bytes: 256, start: 0, end: 9 },
      { id: 1, bytes: 512, start: 1, end: 5 },
      { id: 2, bytes: 256, start: 2, end: 9 },
      { id: 3, bytes: 2048, start: 3, end: 5 },
      { id: 4, bytes: 256, start: 4, end: 9 },
      { id: 5, bytes: 300, start: 6, end: 7 },
    ]);
    expect(p.offsets.get(5)).toBe(p.offsets.get(1));
    expect(p.peak).toBe(256 + 512 + 256 + 2048 + 256);
  });
});

function bufferOf(mp: MemoryPlan, name: string): { offset: number; bytes: number; space: string } {
  for (const [v, buf] of mp.buffers) if ((v as Value).name === name || nodeNameOf(v) === name) return buf;
  throw new Error(`no buffer for ${name}`);
}
const producedBy = new Map<Value, string>();
const nodeNameOf = (v: Value): string | undefined => producedBy.get(v);

describe('planMemory', () => {
  it('keeps values read inside a branch (and their views) alive across both regions', () => {
    const m = branchModule();
    const walk = (nodes: ReturnType<typeof branchModule>['graph']['nodes']): void => {
      for (const n of nodes) {
        n.outputs.forEach((o) => producedBy.set(o, n.name));
        n.subgraphs().forEach((g) => walk(g.nodes));
      }
    };
    walk(m.graph.nodes);
    const lp = lowerModule(m, { emitFragment: emitFragmentStub });
    const mp = planMemory(lp);
    const a = bufferOf(mp, 'a');
    expect(a.space).toBe('arena');
    for (const t of ['t1', 't2', 'e1']) {
      const tb = bufferOf(mp, t);
      const disjoint = tb.offset + tb.bytes <= a.offset || a.offset + a.bytes <= tb.offset;
      expect({ t, disjoint }).toEqual({ t, disjoint: true });
    }
    // The view shares a's bytes.
    expect(bufferOf(mp, 'view').offset).toBe(a.offset);
    expect(bufferOf(mp, 'x').space).toBe('io');
    expect(mp.spaces.arena % ALIGNMENT).toBe(0);
  });
});
