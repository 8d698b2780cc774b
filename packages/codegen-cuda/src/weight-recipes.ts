/**
 * Which constants a plan records as generator recipes (plan `weights.generated`) instead of bytes
 * in weights.bin: seeded `--random-weights` tensors whose plan bytes are a function of the recipe
 * alone. That holds for a random initializer as imported (any shape: element i is the generator's
 * x_i) and for its dtype conversion by the dtype policy (rounded to the model dtype, then to the
 * plan dtype). Any other transform (a transpose, a concatenation, a slice or reshape view folded
 * into a new constant) makes a constant of another source kind, which is written to weights.bin as
 * before: the recipe never has to describe a layout.
 *
 *   m.blocks.0.attn.to_q.weight: bf16[3072,3072], random seed S, plan dtype bf16
 *     -> { seed: S, count: 9437184, fanIn: 3072, from: 'bf16', dtype: 'bf16' }
 */
import type { ConstData, Value } from '@paradit/ir';
import { numel } from '@paradit/ir';
import type { GeneratedWeight } from '@paradit/runtime';
import { WEIGHT_GENERATOR } from '@paradit/runtime';
import { convertedFrom } from './dtype-policy';

type WeightRecipe = Omit<GeneratedWeight, 'buf'>;

type GenDType = GeneratedWeight['dtype'];
const GEN_DTYPES: Readonly<Record<string, GenDType>> = { f32: 'f32', bf16: 'bf16', f16: 'f16' };

/** The recipe of a constant stored as `planDtype`, or undefined when it must be materialized. */
function weightRecipe(c: ConstData, planDtype: string): WeightRecipe | undefined {
  const conv = convertedFrom(c);
  const base = conv ? conv.from : c;
  const src = base.source;
  // A graph-only stand-in counts as a weights-file tensor (inspect's stats match the real model's).
  if (src.kind !== 'random' || src.standIn) return undefined;
  // f64 random data holds the f32 generator's values exactly (randomTensor), so it is 'f32'.
  const from = base.type.dtype === 'f64' ? 'f32' : GEN_DTYPES[base.type.dtype];
  const dtype = GEN_DTYPES[planDtype];
  if (!from || !dtype) return undefined;
  const shape = base.type.shape;
  if (!shape.every((d): d is number => typeof d === 'number')) return undefined;
  const fanIn = shape.length > 0 ? shape[shape.length - 1]! : 1;
  const count = numel(shape);
  // A zero-size last dim: randomBound clamps the fan-in to 1 (and there are no elements anyway).
  return { generator: WEIGHT_GENERATOR, seed: src.seed, count, fanIn: Math.max(1, fanIn), from, dtype };
}

/** `v`'s recipe when it is a constant the runtime can generate. */
export function valueRecipe(v: Value): WeightRecipe | undefined {
  return v.constant ? weightRecipe(v.constant, v.dtype) : undefined;
}
