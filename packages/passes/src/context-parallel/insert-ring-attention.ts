/**
 * insert-ring-attention: ring attention. Replaces "gather keys and values over 'ring'" by a ring
 * loop, unrolled R times: each rank keeps its query block, computes attention against the key/
 * value block it holds (attention_lse: partial output and row log-sum-exp, fp32), passes the block
 * on to the next rank (ppermute, shift 1) and merges partials with lse_merge (fp32). At step t a
 * rank of ring index r holds block (r - t) mod R, so the mask's key axis is sliced the same way
 * (shard_slice with shift t): text padding masks and the padding of uneven shards work under ring.
 *
 * Requires: attention whose k and v are the outputs of all_gather {meshAxis: ring, axis: 2}
 *   (shard-sequence with ulysses = 1, or insert-all-to-all with ring > 1) and whose q is split over
 *   ring on axis 2; mesh from ctx with ring R > 1.
 * Ensures: no key/value gather remains; the attention output keeps its placement (cast back from
 *   the fp32 merge to q's dtype). A row whose every key is masked gives 0 instead of NaN.
 *
 * Before (R = 2):
 *   %kg = all_gather(%k) {meshAxis: ring, axis: 2, groupSize: 2}
 *   %o = attention(%q, %kg, %vg, %mask) {...}                       f32[1,4,8,8]@shard(2,ring)
 * After:
 *   %m0 = shard_slice(%mask) {meshAxis: ring, axis: 3, groupSize: 2, shift: 0}
 *   %o0, %l0 = attention_lse(%q, %k, %v, %m0) {...}
 *   %k1 = ppermute(%k) {meshAxis: ring, shift: 1, groupSize: 2}     (and %v1)
 *   %m1 = shard_slice(%mask) {..., shift: 1}
 *   %o1, %l1 = attention_lse(%q, %k1, %v1, %m1) {...}
 *   %o, %l = lse_merge(%o0, %l0, %o1, %l1)                          f32[1,4,8,8]@shard(2,ring)
 */
import { Module, Value, attrsFor, axisPlace, dtypeToOnnx, globalShape, withPlace } from '@paradit/ir';
import type { AttrValue, AxisPlace, Mesh } from '@paradit/ir';
import type { Pass } from '../pass';
import { meshOf } from './shard/mesh-options';
import { meshSizes } from './shard/view';
import { PlacedRebuild } from './shard/rebuild';
import { attentionOutDist, deadKeyGathers, findGatheredKeySites } from './shard/gathered-keys';
import type { GatheredKeySite } from './shard/gathered-keys';

const int = (value: number): AttrValue => ({ kind: 'int', value });

export type RingSite = GatheredKeySite;

/** Attention nodes whose q is split over 'ring' and whose keys and values are gathered over it. */
export function findRingSites(m: Module, mesh: Mesh): RingSite[] {
  return mesh.ring > 1 ? findGatheredKeySites(m, 'ring') : [];
}

export function insertRingAttention(m: Module, mesh: Mesh): Module {
  const sites = findRingSites(m, mesh);
  if (sites.length === 0) return m;
  const R = mesh.ring;
  const byNode = new Map(sites.map((s) => [s.node, s]));
  const dead = deadKeyGathers(m, sites);
  const sizeOf = meshSizes(mesh);
  const r = new PlacedRebuild(m, sizeOf);
  for (const n of m.graph.nodes) {
    if (dead.has(n)) continue;
    const s = byNode.get(n);
    if (!s) {
      r.copy(n);
      continue;
    }
    const name = n.name || 'attention';
    const q = r.get(n.inputs[0]!);
    const qd = r.dist(q);
    const oDist = attentionOutDist(qd);
    const lseDist = oDist; // [B,N,Sq]: the same axes 0..2
    // The mask's key axis (when it has one) is sliced to the block held at each step.
    const mask = n.inputs[3] ? r.get(n.inputs[3]) : undefined;
    const maskKeyAxis = mask && globalShape(mask.shape as number[], r.dist(mask), sizeOf)[mask.shape.length - 1] !== 1 ? mask.shape.length - 1 : undefined;
    const maskAt = (t: number): Value | null => {
      if (!mask) return null;
      if (maskKeyAxis === undefined) return mask;
      const d = r.dist(mask);
      const p: AxisPlace = { ...axisPlace(d, maskKeyAxis), meshAxis: 'ring' };
      return r.add('shard_slice', [mask], attrsFor('shard_slice', { meshAxis: 'ring', axis: maskKeyAxis, groupSize: R, shift: t }), `${name}/mask_block_${t}`, [withPlace(d, maskKeyAxis, p)])[0]!;
    };
    let kb = r.get(s.k);
    let vb = r.get(s.v);
    const step = (t: number): [Value, Value] => {
      const [o, l] = r.add('attention_lse', [q, kb, vb, maskAt(t)], n.attrs, `${name}/ring_step_${t}`, [oDist, lseDist]);
      return [o!, l!];
    };
    let [o, lse] = step(0);
    for (let t = 1; t < R; t++) {
      const pass = (x: Value, what: string): Value =>
        r.add('ppermute', [x], attrsFor('ppermute', { meshAxis: 'ring', shift: 1, groupSize: R }), `${name}/${what}_ring_send_${t}`, [r.dist(x)])[0]!;
      const shared = kb === vb; // self-attention on one tensor: pass it once
      kb = pass(kb, 'k');
      vb = shared ? kb : pass(vb, 'v');
      const [ot, lt] = step(t);
      [o, lse] = r.add('lse_merge', [o, lse, ot, lt], {}, `${name}/ring_merge_${t}`, [oDist, lseDist]) as [Value, Value];
    }
    const dtype = n.outputs[0]!.dtype;
    const out = dtype === 'f32' ? o : r.add('Cast', [o], { to: int(dtypeToOnnx(dtype)) }, `${name}/ring_cast`, [oDist])[0]!;
    r.replace(n.outputs[0]!, out);
  }
  return r.finish();
}

export const insertRingAttentionPass: Pass = {
  name: 'insert-ring-attention',
  description: 'ring attention: pass key/value blocks around the ring and merge partial outputs by log-sum-exp (fp32)',
  run: (m, ctx) => insertRingAttention(m, meshOf(ctx)),
};
