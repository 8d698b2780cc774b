/**
 * Views of nodes for the sharding rules: global shapes reconstructed from a value's stored
 * (possibly per-rank) type and its placement, compile-time values of shape operands, and the
 * dists the rules reason about. Shared by the sharding passes (global coordinates) and the
 * verifier (per-rank coordinates).
 */
import type { Node, Value } from '../graph';
import { isStaticShape } from '../graph';
import type { Tensor } from '../tensor';
import { numel } from '../tensor';
import { isFloat } from '../dtype';
import { IrError } from '../errors';
import { isElided } from '../content-hash';
import { AttrReader, makeFail } from '../ops/rule';
import type { Dist } from '../placement';
import { distOf, naturalLength, orderedLength, tokenAxes } from '../placement';
import type { ShardView } from './core';

export type SizeOf = (meshAxis: string) => number;

/** The global (natural) shape of a value stored with `local` shape and placed as `d`. */
export function globalShape(local: readonly number[], d: Dist, sizeOf: SizeOf): number[] {
  const out = [...local];
  for (const s of d.shards) out[s.axis] = out[s.axis]! * sizeOf(s.meshAxis);
  for (const a of d.tokens ? tokenAxes(d.tokens) : []) {
    const t = d.tokens!;
    if (out[a] !== orderedLength(t)) {
      throw new IrError('E_VERIFY', `a value of shape [${local.join(',')}] has ${out[a]} positions on token axis ${a}, but its token order needs ${orderedLength(t)}`);
    }
    out[a] = naturalLength(t);
  }
  return out;
}

export function staticShapeOf(v: Value): readonly number[] {
  if (!isStaticShape(v.shape)) {
    throw new IrError(
      'E_UNSUPPORTED',
      `value '${v.name || v.id}' has symbolic shape [${v.shape.join(',')}]; context parallelism needs static shapes (export with fixed sizes or fold the shape arithmetic first)`,
    );
  }
  return v.shape;
}

/** Small constant data (shape operands), read the way the builder reads known values. */
export function knownValue(v: Value | null): Tensor | undefined {
  const c = v?.constant;
  if (!c || !v || !isStaticShape(v.shape) || numel(v.shape) > 1 << 16) return undefined;
  if (!c.loaded && c.source.kind !== 'inline' && isFloat(v.dtype)) return undefined;
  if (isElided(c)) return undefined; // read from IR text with its data left out
  return c.tensor();
}

export interface ViewInput {
  readonly node: Node;
  readonly opset: number;
  /** The dist of each input as the rule should see it (REPLICATED for omitted inputs). */
  readonly dists: readonly Dist[];
  readonly sizeOf: SizeOf;
  readonly coords: 'global' | 'local';
}

export function makeView(x: ViewInput): ShardView {
  const glob = (v: Value): number[] => globalShape(staticShapeOf(v), distOf(v.type.placement), x.sizeOf);
  const n = x.node;
  return {
    op: n.op,
    opset: x.opset,
    attr: new AttrReader(n.attrs, makeFail(n)),
    inShapes: n.inputs.map((v) => (v ? glob(v) : undefined)),
    outShapes: n.outputs.map(glob),
    // Planning reads attributes in natural coordinates, so its "raw" shapes are the global ones.
    rawInShapes: n.inputs.map((v) => (v ? (x.coords === 'global' ? glob(v) : staticShapeOf(v)) : undefined)),
    rawOutShapes: n.outputs.map((v) => (x.coords === 'global' ? glob(v) : staticShapeOf(v))),
    values: n.inputs.map(knownValue),
    dists: x.dists,
    coords: x.coords,
    sizeOf: x.sizeOf,
  };
}
