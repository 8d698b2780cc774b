/**
 * Sharding rules for image rows (axis 2 of NCHW) split over a mesh axis: what the rows-parallel
 * VAE decoder (passes' rows-parallel/) produces, checked by the SPMD verifier.
 *
 *   Conv    rows split, no halo needed (pads 0 on rows, d(k-1)+1 <= s: 1x1, patchify)
 *             -> output rows split (each band convolves on its own, exactly);
 *           rows in halo form (verifier only, coords 'local'): a Concat of [rows from above,
 *             band, rows from below] in rank-chunk order (a token order of 2-3 segments, one
 *             chunk per rank) whose extra rows per chunk are exactly d(k-1)+1-s, row pads 0
 *             -> output rows split (the chunk-wise conv the halo makes exact);
 *           anything else: Conv's batch-parallel rule (rows gathered first).
 *   Resize  nearest with an integer row scale, rows split -> output rows split (output row j
 *             reads input row floor(j/u): inside the band); else gathered.
 *
 * In planning coordinates ('global') a Conv keeps a split only where no halo is needed: the
 * sharding passes never build halos, so a conv that needs one is gathered, as before.
 */
import type { ShardPlan, ShardRule, ShardView } from './core';
import { axisPlace, isPlainAxis, replicateAll, restrict } from './core';
import { batchParallelRule } from './nn';
import { REPLICATED } from '../placement';

/** Only the batch axis and the row axis may be placed; the row axis split over one mesh axis. */
function rowSplit(v: ShardView): string | undefined {
  const d = v.dists[0]!;
  if (v.rawInShapes[0]?.length !== 4 || d.partial) return undefined;
  if (d.shards.some((s) => s.axis !== 0 && s.axis !== 2)) return undefined;
  if (axisPlace(d, 0).tokens) return undefined;
  return axisPlace(d, 2).meshAxis;
}

function keptRows(v: ShardView): ShardPlan {
  const x = v.dists[0]!;
  const out = restrict({ shards: x.shards }, (a) => a === 0 || a === 2);
  return { ins: [x, ...v.dists.slice(1).map(() => REPLICATED)], outs: [out] };
}

export const convRowsRule: ShardRule = {
  propagate(v): ShardPlan {
    const m = rowSplit(v);
    if (m === undefined || v.dists.slice(1).some((d) => d.shards.length > 0 || d.tokens || d.partial)) return batchParallelRule.propagate(v);
    const k = v.attr.optInts('kernel_shape')?.[0] ?? v.rawInShapes[1]?.[2] ?? 1;
    const s = v.attr.optInts('strides')?.[0] ?? 1;
    const dil = v.attr.optInts('dilations')?.[0] ?? 1;
    const pads = v.attr.optInts('pads') ?? [0, 0, 0, 0];
    const autoPad = v.attr.has('auto_pad') ? v.attr.string('auto_pad') : 'NOTSET';
    if (autoPad !== 'NOTSET' || pads[0] !== 0 || pads[2] !== 0) return batchParallelRule.propagate(v);
    const halo = dil * (k - 1) + 1 - s;
    const tokens = axisPlace(v.dists[0]!, 2).tokens;
    if (halo <= 0 && !tokens) return keptRows(v);
    if (v.coords !== 'local' || !tokens || tokens.chunks !== v.sizeOf(m) || tokens.segments.length < 2 || tokens.segments.length > 3) return batchParallelRule.propagate(v);
    const band = Math.max(...tokens.segments);
    const extra = tokens.segments.reduce((a, b) => a + b, 0) - band;
    if (extra !== halo * tokens.chunks) {
      return { ...batchParallelRule.propagate(v), note: `Conv's rows carry ${extra / tokens.chunks} halo rows per rank, but its kernel needs ${halo}` };
    }
    return keptRows(v);
  },
  trace: (v, axis) => batchParallelRule.trace(v, axis),
};

export const resizeRowsRule: ShardRule = {
  propagate(v): ShardPlan {
    const m = rowSplit(v);
    const mode = v.attr.has('mode') ? v.attr.string('mode') : 'nearest';
    // Per-rank (or, planning, global) shapes of both: the row ratio is the same in either.
    const x = v.rawInShapes[0];
    const y = v.rawOutShapes[0];
    const integer = x !== undefined && y !== undefined && y[2]! % x[2]! === 0 && y[0] === x[0] && y[1] === x[1];
    if (m === undefined || axisPlace(v.dists[0]!, 2).tokens || mode !== 'nearest' || !integer || v.dists.slice(1).some((d) => !isPlainAxis(axisPlace(d, 0)) || d.shards.length > 0)) {
      return replicateAll(v, `${v.op}: mixes positions along any axis (rows split only through nearest integer upsampling); its operands are gathered`);
    }
    return keptRows(v);
  },
  trace: () => 'origin',
};
