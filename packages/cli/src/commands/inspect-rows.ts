/**
 * `paradit inspect VAE --rows-parallel W [--json]`: the rows-parallel plan of a VAE decoder
 * (passes' halo-plan.ts), per rank: the halo rows and bytes each convolution receives from its
 * neighbours, the fp32 all-reduce volume of each GroupNorm, the K/V gathered by the mid-block
 * attention, and the totals. Volumes are what a rank needs (an edge rank has one neighbour); the
 * `collectives` field next to it counts what the compiled module sends, per rank in `bytesByRank`:
 * the halos are non-cyclic ppermutes, so an edge rank receives one side there too and the two
 * agree. docs/json-output.md documents the fields.
 */
import type { DType, Module } from '@paradit/ir';
import { planRowsParallel } from '@paradit/passes';
import type { RowsParallelPlan, RowsStep } from '@paradit/passes';
import { fmtBytes } from './inspect';

export interface RowsInspection {
  readonly degree: number;
  readonly meshAxis: 'ring';
  /** Activation dtype the halos and K/V travel in; GroupNorm statistics are always fp32. */
  readonly dtype: DType;
  readonly convs: readonly { node: string; op: string; rows: number; rowsPerRank: number; haloTop: number; haloBottom: number; haloRowsByRank: readonly number[]; haloBytesByRank: readonly number[] }[];
  readonly groupNorms: readonly { node: string; op: string; rows: number; allReduceBytesByRank: readonly number[] }[];
  readonly attention: readonly { node: string; op: string; tokens: number; gatherBytesByRank: readonly number[] }[];
  readonly upsamples: readonly { node: string; op: string; rows: number }[];
  readonly totals: {
    readonly haloRowsByRank: readonly number[];
    readonly haloBytesByRank: readonly number[];
    readonly allReduceBytesByRank: readonly number[];
    readonly gatherBytesByRank: readonly number[];
  };
}

function of(p: RowsParallelPlan, kind: RowsStep['kind']): RowsStep[] {
  return p.steps.filter((s) => s.kind === kind);
}

/** The rows-parallel fields of `inspect --json` for `m` (after the default pipeline) at degree `world`. */
export function rowsInspection(m: Module, world: number, dtype: DType): RowsInspection {
  const p = planRowsParallel(m, world, dtype);
  const convs = of(p, 'conv-halo');
  const haloRowsByRank = new Array<number>(world).fill(0);
  for (const c of convs) c.haloRowsByRank.forEach((r, k) => (haloRowsByRank[k]! += r));
  return {
    degree: world,
    meshAxis: 'ring',
    dtype,
    convs: convs.map((s) => ({ node: s.name, op: s.op, rows: s.rows, rowsPerRank: s.rowsPerRank, haloTop: s.haloTop, haloBottom: s.haloBottom, haloRowsByRank: s.haloRowsByRank, haloBytesByRank: s.bytesByRank })),
    groupNorms: of(p, 'norm-all-reduce').map((s) => ({ node: s.name, op: s.op, rows: s.rows, allReduceBytesByRank: s.bytesByRank })),
    attention: of(p, 'attention-gather').map((s) => ({ node: s.name, op: s.op, tokens: s.rows, gatherBytesByRank: s.bytesByRank })),
    upsamples: of(p, 'upsample').map((s) => ({ node: s.name, op: s.op, rows: s.rows })),
    totals: { haloRowsByRank, haloBytesByRank: p.haloBytesByRank, allReduceBytesByRank: p.allReduceBytesByRank, gatherBytesByRank: p.gatherBytesByRank },
  };
}

const list = (xs: readonly number[]): string => xs.join(',');
const bytes = (xs: readonly number[]): string => xs.map(fmtBytes).join(', ');

/** The text form: one line per conv and GroupNorm, then the totals per rank. */
export function formatRowsInspection(r: RowsInspection): string {
  const lines = [`rows-parallel ${r.degree} over mesh axis ${r.meshAxis} (${r.dtype} activations, fp32 GroupNorm statistics); per rank 0..${r.degree - 1}:`];
  for (const c of r.convs) lines.push(`  conv ${c.op} '${c.node}': rows ${c.rows} (${c.rowsPerRank}/rank), halo ${c.haloTop} above + ${c.haloBottom} below; halo rows ${list(c.haloRowsByRank)}, bytes ${list(c.haloBytesByRank)}`);
  for (const u of r.upsamples) lines.push(`  upsample ${u.op} '${u.node}': rows ${u.rows}, local (no halo)`);
  for (const g of r.groupNorms) lines.push(`  groupnorm ${g.op} '${g.node}': all-reduce bytes ${list(g.allReduceBytesByRank)}`);
  for (const a of r.attention) lines.push(`  attention '${a.node}': ${a.tokens} tokens, K/V gathered bytes ${list(a.gatherBytesByRank)}`);
  const t = r.totals;
  lines.push(`  total: halo rows ${list(t.haloRowsByRank)}; halo ${bytes(t.haloBytesByRank)}; all-reduce ${bytes(t.allReduceBytesByRank)}; K/V gather ${bytes(t.gatherBytesByRank)}`);
  return lines.join('\n');
}
