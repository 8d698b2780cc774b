/**
 * The plan builder emits each distinct kernel once: kernels whose sources differ only in their
 * entry name (the same fragment in every transformer block) launch one shared entry, so
 * kernels/module.cu, and nvcc's work, stop growing with the block count (full FLUX.1-dev: 487
 * kernel instructions, 26 entries instead of 431). Guards against a regression to one entry per
 * instruction and against two different kernels merged into one entry.
 */
import { buildTinyDit, TINY_DIT } from '../models/tiny-dit';
import { compileModule } from '@paradit/compiler';
import type { Instr } from '@paradit/runtime';
import { planMeta } from './helpers';

function kernelsOf(blocks: number) {
  const c = compileModule(buildTinyDit({ ...TINY_DIT, blocks }), { dtype: 'bf16' });
  const plan = c.built.plan({ ...planMeta('bf16'), weightsSha256: '', cubin: null, sourceOptions: [], files: {} });
  const launches = plan.program.filter((i): i is Extract<Instr, { op: 'kernel' }> => i.op === 'kernel');
  return { plan, launches, source: c.built.kernels.source, lowered: c.lowered };
}

const defined = (source: string, entry: string): number => source.split(new RegExp(`__global__ void (?:__launch_bounds__\\(\\d+\\) )?${entry}\\(`)).length - 1;

describe('kernel deduplication in the plan builder', () => {
  const one = kernelsOf(1);
  const four = kernelsOf(4);

  it('more blocks add kernel launches but no new entries', () => {
    expect(four.launches.length).toBeGreaterThan(one.launches.length);
    expect(four.plan.stats['kernelEntries']).toBe(one.plan.stats['kernelEntries']);
    expect(new Set(four.launches.map((k) => k.kernel)).size).toBe(four.plan.stats['kernelEntries']);
  });

  it('every launched entry is defined exactly once in module.cu, and no unlaunched one is', () => {
    const names = new Set(four.launches.map((k) => k.kernel));
    for (const n of names) expect(defined(four.source, n)).toBe(1);
    expect((four.source.match(/^extern "C" __global__/gm) ?? []).length).toBe(names.size);
  });

  it('a launch uses an entry whose source is its own kernel up to the name', () => {
    // The lowered program's kernels, in program order, against the plan's launches.
    const lowered = four.lowered.program.flatMap((i) => (i.op === 'kernel' ? [i.kernel] : []));
    expect(lowered).toHaveLength(four.launches.length);
    const byEntry = new Map(lowered.map((k) => [k.entry, k.source]));
    lowered.forEach((k, i) => {
      const shared = four.launches[i]!.kernel;
      const norm = (s: string, e: string) => s.split(e).join('@');
      expect(norm(byEntry.get(shared)!, shared)).toBe(norm(k.source, k.entry));
    });
  });
});
