/**
 * The CUDA lowering table (lower/cuda-coverage.ts) agrees with the emitters: every op of the IR
 * has an entry, every op it sends to the indexed path has an indexed rule, every pointwise op a
 * scalar op, and refused ops are refused by the fragment emitter with the table's reason. Guards
 * against an op that the table claims is covered but that fails to compile.
 */
import { GraphBuilder, OPS, Tensor } from '@paradit/ir';
import type { OpKind } from '@paradit/ir';
import { CUDA_PATHS, coverageError, refusedNodes } from '../src/lower/cuda-coverage';
import { INDEXED_LOWERINGS } from '../src/kernels/indexed-ops';
import { scalarOpFor } from '../src/kernels/scalar-ops';
import { emitFragment } from '../src/kernels';
import { Module } from '@paradit/ir';

const entries = Object.entries(CUDA_PATHS) as [OpKind, (typeof CUDA_PATHS)[OpKind]][];

describe('CUDA lowering table', () => {
  test('has exactly the IR ops as keys', () => {
    expect(Object.keys(CUDA_PATHS).sort()).toEqual(Object.keys(OPS).sort());
  });

  test('every indexed op has an indexed rule (LayerNormalization and RMSNormalization fall back inside the planner)', () => {
    const missing = entries.filter(([op, p]) => p.kind === 'indexed' && !INDEXED_LOWERINGS[op]).map(([op]) => op);
    expect(missing).toEqual([]);
  });

  // rope is a planner expression of its own; lse_merge is decomposed into pointwise math by lower-collectives.
  test('every pointwise op has a scalar op', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: [2] });
    const node = b.add('Add', [x, x], {}, { name: 'n' })[0]!;
    const n = b.build([node]).nodes[0]!;
    const missing = entries
      .filter(([op, p]) => p.kind === 'pointwise' && !['lse_merge', 'rope'].includes(op))
      .filter(([op]) => {
        try {
          return scalarOpFor({ ...n, op, attrs: op === 'BitShift' ? { direction: { kind: 'string', value: 'LEFT' } } : op === 'Mod' ? { fmod: { kind: 'int', value: 1 } } : {}, label: op } as never, ['f32', 'f32', 'f32'], 'f32') === undefined;
        } catch {
          return false; // it has an entry (the attribute check failed on this dummy node)
        }
      })
      .map(([op]) => op);
    expect(missing).toEqual([]);
  });

  test('a refused op is refused by the fragment emitter with the reason, and listed by refusedNodes', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: [3] });
    const [y] = b.add('NonZero', [x], {}, { name: 'nz' });
    const g = b.build([y!]);
    expect(() => emitFragment(g, { namePrefix: 'f' })).toThrow(/NonZero 'nz'.*depends on the data/);
    expect(refusedNodes(new Module(g, { '': 18 }))).toEqual([expect.stringMatching(/^NonZero 'nz': its output shape depends on the data/)]);
    expect(coverageError([])).toBeUndefined();
    void Tensor;
  });
});
