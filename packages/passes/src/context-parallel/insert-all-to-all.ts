/**
 * insert-all-to-all: Ulysses attention. Replaces "gather keys and values over the sequence axis"
 * (what shard-sequence leaves) by all-to-alls that trade the sequence split for a head split:
 * before attention q, k and v gather the sequence and scatter the heads within each Ulysses group;
 * after it the output does the reverse. With ring > 1 (hybrid, USP) the all-to-all runs inside
 * each ring group and keys/values are still gathered over 'ring' (insert-ring-attention then
 * turns that gather into the ring loop).
 *
 * Requires: the output of shard-sequence (attention q split on axis 2 over the sequence mesh
 *   axis, k and v each the output of all_gather over it); mesh from ctx with ulysses U > 1.
 * Ensures: per rank, attention runs on N/U heads over the whole sequence (or its ring block);
 *   attention outputs are placed as before. Grouped-query key/value heads that U does not divide
 *   are repeated first (kvRepeat: exact, each query head keeps its kv head). Refuses (IrError
 *   naming the attention node) when the query heads are not divisible by U, listing the degrees
 *   that work.
 *
 * Before (U = 2, R = 1):
 *   %kg = all_gather(%k) {meshAxis: ulysses, axis: 2, groupSize: 2}   f32[1,4,32,8]@tokens(...)
 *   %o = attention(%q, %kg, %vg) {numHeads: 4, kvHeads: 4}              f32[1,4,16,8]@shard(2,ulysses)
 * After:
 *   %q2 = all_to_all(%q) {meshAxis: ulysses, splitAxis: 1, concatAxis: 2, groupSize: 2}  f32[1,2,32,8]@shard(1,ulysses)
 *   %k2 = all_to_all(%k) {...}; %v2 = all_to_all(%v) {...}
 *   %o2 = attention(%q2, %k2, %v2) {numHeads: 2, kvHeads: 2}           f32[1,2,32,8]@shard(1,ulysses)
 *   %o = all_to_all(%o2) {meshAxis: ulysses, splitAxis: 2, concatAxis: 1, groupSize: 2}  f32[1,4,16,8]@shard(2,ulysses)
 */
import { IrError, Module, Tensor, Value, attrsFor, attrsOf, axisPlace, distFromPlaces, distOf, isPlainAxis, seqMeshAxis, withPlace } from '@paradit/ir';
import type { AttrValue, AxisPlace, Dist, Mesh } from '@paradit/ir';
import type { Pass } from '../pass';
import { meshOf } from './shard/mesh-options';
import { globalShape, meshSizes } from './shard/view';
import { PlacedRebuild } from './shard/rebuild';
import { attentionOutDist, deadKeyGathers, findGatheredKeySites } from './shard/gathered-keys';
import type { GatheredKeySite } from './shard/gathered-keys';

export interface UlyssesSite extends GatheredKeySite {
  readonly heads: number;
  readonly kvHeads: number;
}

const int = (value: number): AttrValue => ({ kind: 'int', value });

/** Attention nodes in the gather-keys form over the sequence mesh axis, with heads not yet split. */
export function findUlyssesSites(m: Module, mesh: Mesh): UlyssesSite[] {
  const S = seqMeshAxis(mesh);
  if (mesh.ulysses <= 1 || !S) return [];
  return findGatheredKeySites(m, S)
    .filter((s) => isPlainAxis(axisPlace(distOf(s.q.type.placement), 1)))
    .map((s) => {
      const { numHeads: heads, kvHeads } = attrsOf(s.node, 'attention');
      return { ...s, heads, kvHeads };
    });
}

function divisors(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1).filter((d) => n % d === 0);
}

/**
 * Throws the user-facing message when a site's query heads do not split over U. Key/value heads
 * need not: they are replicated (kvRepeat), so the degrees that work are the divisors of the
 * query head count.
 */
export function checkUlyssesHeads(sites: readonly UlyssesSite[], U: number): void {
  for (const s of sites) {
    if (s.heads % U === 0) continue;
    throw new IrError(
      'E_UNSUPPORTED',
      `attention '${s.node.name || s.node.op}': ${s.heads} head${s.heads === 1 ? ' is' : 's are'} not divisible by ulysses degree ${U}; ` +
        `use --ring or a degree that divides ${s.heads} (${divisors(s.heads).join(', ')})`,
      s.node.name,
    );
  }
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * Grouped-query attention with fewer key/value heads than U (or a count U does not divide): each
 * kv head is repeated `r` times (consecutively), so that the Nkv*r = lcm(Nkv, U) heads split over
 * U and every query head h still reads its own head: h / (N / (Nkv*r)) / r = h / (N / Nkv). Since
 * Nkv and U both divide N, so does lcm(Nkv, U). Returns 1 when no repetition is needed.
 */
export function kvRepeat(heads: number, kvHeads: number, U: number): number {
  if (kvHeads % U === 0) return 1;
  const l = (kvHeads * U) / gcd(kvHeads, U);
  if (heads % l !== 0) throw new IrError('E_UNSUPPORTED', `${heads} query heads over ${kvHeads} key/value heads cannot be split over ulysses degree ${U}`);
  return l / kvHeads;
}

export function insertAllToAll(m: Module, mesh: Mesh): Module {
  const sites = findUlyssesSites(m, mesh);
  if (sites.length === 0) return m;
  const U = mesh.ulysses;
  checkUlyssesHeads(sites, U);
  const byNode = new Map(sites.map((s) => [s.node, s]));
  // The old key/value gathers disappear when the rewritten attentions were their only readers.
  const dead = deadKeyGathers(m, sites);
  const sizeOf = meshSizes(mesh);
  const r = new PlacedRebuild(m, sizeOf);
  const a2a = (x: Value, split: number, concat: number, name: string, to: Dist): Value =>
    r.add('all_to_all', [x], attrsFor('all_to_all', { meshAxis: 'ulysses', splitAxis: split, concatAxis: concat, groupSize: U }), name, [to])[0]!;
  for (const n of m.graph.nodes) {
    if (dead.has(n)) continue;
    const s = byNode.get(n);
    if (!s) {
      r.copy(n);
      continue;
    }
    const name = n.name || 'attention';
    const rep = kvRepeat(s.heads, s.kvHeads, U);
    // q: sequence whole within the Ulysses group (split over ring if R > 1), heads split.
    const scattered = new Map<Value, Value>(); // self-attention on one tensor: one all-to-all
    const scatter = (x: Value, what: string): Value => {
      const hit = scattered.get(x);
      if (hit) return hit;
      const d = r.dist(x);
      const seq = axisPlace(d, 2);
      const seqAfter: AxisPlace = { ...(seq.tokens ? { tokens: seq.tokens } : {}), ...(mesh.ring > 1 ? { meshAxis: 'ring' } : {}) };
      const y = a2a(x, 1, 2, `${name}/${what}_all_to_all`, withPlace(withPlace(d, 1, { meshAxis: 'ulysses' }), 2, seqAfter));
      scattered.set(x, y);
      return y;
    };
    const q = scatter(r.get(s.q), 'q');
    const gathered = new Map<Value, Value>();
    const kvWhole = (x: Value, what: string): Value => {
      const hit = gathered.get(x);
      if (hit) return hit;
      let src = r.get(x);
      if (rep > 1) {
        // GQA below U: repeat each kv head rep times (Gather on the head axis; tokens stay split).
        const idx = Array.from({ length: s.kvHeads * rep }, (_, j) => Math.floor(j / rep));
        const at = r.b.constant(Tensor.from('i64', [idx.length], idx), `${name}.kv_head_index`);
        src = r.add('Gather', [src, at], { axis: int(1) }, `${name}/${what}_repeat_heads`, [r.dist(src)])[0]!;
      }
      const y = scatter(src, what);
      const whole = mesh.ring > 1 ? r.reshard(y, withPlace(r.dist(y), 2, { ...axisPlace(r.dist(y), 2), meshAxis: undefined }), `${name}/${what}`) : y;
      gathered.set(x, whole);
      return whole;
    };
    const k = kvWhole(s.k, 'k');
    const v = kvWhole(s.v, 'v');
    const qd = r.dist(q);
    const kd = r.dist(k);
    let mask: Value | null = null;
    const m0 = n.inputs[3];
    if (m0) {
      // The mask follows the new layout: heads split, query rows like q, keys like k.
      const mv = r.get(m0);
      const rank = mv.shape.length;
      const places = new Map<number, AxisPlace>();
      const target = [axisPlace(qd, 0), axisPlace(qd, 1), axisPlace(qd, 2), axisPlace(kd, 2)];
      globalShape(mv.shape as number[], r.dist(mv), sizeOf).forEach((d, j) => {
        const p = target[j + 4 - rank]!;
        if (d !== 1 && !isPlainAxis(p)) places.set(j, p);
      });
      mask = r.reshard(mv, distFromPlaces(places), `${name}/mask`, mv.dtype === 'bool' ? 1 : 0);
    }
    const attrs = { ...n.attrs, numHeads: int(s.heads / U), kvHeads: int((s.kvHeads * rep) / U) };
    const outDist = attentionOutDist(qd);
    const o = r.add('attention', [q, k, v, mask], attrs, name, [outDist])[0]!;
    const back = a2a(o, 2, 1, `${name}/out_all_to_all`, distOf(n.outputs[0]!.type.placement));
    r.replace(n.outputs[0]!, back);
  }
  return r.finish();
}

export const insertAllToAllPass: Pass = {
  name: 'insert-all-to-all',
  description: 'Ulysses: turn sequence gathers of keys/values into head-scattering all-to-alls around attention',
  run: (m, ctx) => insertAllToAll(m, meshOf(ctx)),
};
