/**
 * insert-cache-gate: forming the entering values (each leaving value's stream right after the
 * first block) by re-running the data-movement nodes of its skip path on the first block's
 * outputs, with two simplifications so a chain such as FLUX's per-block
 * `Concat(text, image) -> Slice, Slice -> Concat -> ...` collapses to one Concat:
 *
 *   Slice(Concat(x0, .., xn; axis a); exactly the range of xi on axis a, step 1) -> xi
 *   the same op on the same inputs with the same attributes                      -> the earlier copy
 */
import type { Node, Value } from '@paradit/ir';
import type { CachePlan } from './analyze';
import type { NodeMaker } from './gate';

function ints(v: Value | null | undefined): number[] | undefined {
  const c = v?.constant;
  return c ? Array.from(c.tensor().data) : undefined;
}

/** The operand of a Concat that a Slice takes exactly, if it does. */
function sliceOfConcat(slice: Node, inputs: readonly (Value | null)[], concatOf: ReadonlyMap<Value, Node>): Value | undefined {
  const concat = inputs[0] ? concatOf.get(inputs[0]) : undefined;
  if (!concat || slice.inputs.length < 4) return undefined;
  const [starts, ends, axes] = [ints(slice.inputs[1]), ints(slice.inputs[2]), ints(slice.inputs[3])];
  const steps = slice.inputs[4] ? ints(slice.inputs[4]) : [1];
  const rank = concat.outputs[0]!.shape.length;
  const axisAttr = concat.attrs.axis;
  if (!starts || !ends || !axes || !steps || starts.length !== 1 || axes.length !== 1 || steps[0] !== 1 || axisAttr?.kind !== 'int') return undefined;
  const norm = (a: number): number => (a < 0 ? a + rank : a);
  if (norm(axes[0]!) !== norm(axisAttr.value)) return undefined;
  const sizes = concat.inputs.map((x) => x?.shape[norm(axisAttr.value)]);
  if (sizes.some((n) => typeof n !== 'number')) return undefined;
  const total = (sizes as number[]).reduce((a, b) => a + b, 0);
  // ONNX clamps: negative counts from the end, past-the-end (e.g. INT64_MAX) means the end.
  const clamp = (x: number): number => (x < 0 ? Math.max(0, x + total) : Math.min(x, total));
  const [start, end] = [clamp(starts[0]!), clamp(ends[0]!)];
  let at = 0;
  for (let i = 0; i < sizes.length; i++) {
    const n = sizes[i] as number;
    if (start === at && end === at + n) return concat.inputs[i] ?? undefined;
    at += n;
  }
  return undefined;
}

/** The entering value of each leaving value, made with `mk` (which collects the copies). */
export function buildEntering(plan: CachePlan, mk: NodeMaker): Value[] {
  const cloned = new Map<Value, Value>();
  const concatOf = new Map<Value, Node>();
  const made = new Map<string, Value[]>();
  const ids = new Map<Value, number>();
  const id = (v: Value | null): string => {
    if (!v) return '_';
    if (!ids.has(v)) ids.set(v, ids.size);
    return String(ids.get(v));
  };
  const resolve = (v: Value): Value => {
    const s = plan.skipTo.get(v);
    return s ? resolve(s) : (cloned.get(v) ?? v);
  };
  for (const n of plan.enteringClones) {
    const inputs = n.inputs.map((v) => (v ? resolve(v) : null));
    const direct = n.op === 'Slice' ? sliceOfConcat(n, inputs, concatOf) : undefined;
    if (direct) {
      cloned.set(n.outputs[0]!, direct);
      continue;
    }
    const key = `${n.op}(${inputs.map(id).join(',')})${JSON.stringify(n.attrs)}`;
    const outs = made.get(key) ?? mk.clone(n, inputs, '/entering');
    made.set(key, outs);
    if (n.op === 'Concat') concatOf.set(outs[0]!, mk.nodes.find((x) => x.outputs[0] === outs[0]) ?? n);
    n.outputs.forEach((o, i) => cloned.set(o, outs[i]!));
  }
  return plan.leaving.map(resolve);
}
