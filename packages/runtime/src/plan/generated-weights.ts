/**
 * Generated weights (plan version 3): `--random-weights` tensors that a plan records as a recipe
 * (`weights.generated`) instead of bytes in weights.bin. The CPU backend fills them here with the
 * generator of packages/ir/src/onnx/random-weights.ts (randomTensor itself); the CUDA backend with
 * the fill kernel of cuda/fill-weights.ts, which reproduces the same bytes.
 *
 * Layout rule: weights.bin holds bytes [0, weights.bytes) of the weights space; every generated
 * buffer lies in [weights.bytes, spaces.weights), and the bytes there that no generated buffer
 * covers (alignment padding) are zero.
 */
import { Tensor, randomTensor } from '@paradit/ir';
import { PLAN_DTYPE_BYTES, encodeInto } from './bytes';
import type { GeneratedWeight, Plan } from './schema';

/** The generator's name in plan.json. */
export const WEIGHT_GENERATOR = 'uniform-jenkins32' as const;

/**
 * The shape randomTensor needs for a recipe: it reads only the element count and the last dim
 * (fan-in), so [count / fanIn, fanIn] gives the same values as the model's own shape.
 */
function recipeShape(g: GeneratedWeight): number[] {
  if (g.count % g.fanIn !== 0) throw new Error(`generated weight of buffer ${g.buf}: ${g.count} elements are not a multiple of fanIn ${g.fanIn}`);
  return [g.count / g.fanIn, g.fanIn];
}

/** Writes the recipe's bytes into `out` (exactly count * size(dtype) bytes). */
function fillGeneratedWeight(g: GeneratedWeight, out: Uint8Array): void {
  const src = randomTensor(g.from, recipeShape(g), g.seed);
  // The plan writer's conversion: to float32 storage, rounded once to the plan dtype.
  const t = g.from === g.dtype ? src : Tensor.normalized(g.dtype, src.shape, Float32Array.from(src.data));
  encodeInto(t, g.dtype, out);
}

/** The recipe's bytes (a fresh array). */
export function generatedWeightBytes(g: GeneratedWeight): Uint8Array {
  const out = new Uint8Array(g.count * PLAN_DTYPE_BYTES[g.dtype]);
  fillGeneratedWeight(g, out);
  return out;
}

/**
 * Why the plan's generated weights break the layout rule, or undefined: each names a declared
 * weights buffer of the recipe's dtype and size that lies after weights.bin, and no two overlap.
 */
export function generatedWeightsViolation(plan: Plan): string | undefined {
  const byId = new Map(plan.buffers.map((b) => [b.id, b]));
  const spans: [number, number, number][] = [];
  if (plan.weights.bytes > plan.spaces.weights) return `weights.bin has ${plan.weights.bytes} bytes, more than the weights space (${plan.spaces.weights})`;
  if (plan.weights.generated.length === 0 && plan.weights.bytes !== plan.spaces.weights) {
    return `weights.bin has ${plan.weights.bytes} bytes but the weights space ${plan.spaces.weights}, and no weight is generated`;
  }
  for (const g of plan.weights.generated) {
    const b = byId.get(g.buf);
    const what = `generated weight of buffer ${g.buf}`;
    if (!b) return `${what}: no such buffer`;
    if (b.space !== 'weights') return `${what}: '${b.name}' is in the ${b.space} space, not weights`;
    if (b.dtype !== g.dtype) return `${what}: '${b.name}' is ${b.dtype}, the recipe says ${g.dtype}`;
    if (b.bytes !== g.count * PLAN_DTYPE_BYTES[g.dtype]) return `${what}: '${b.name}' has ${b.bytes} bytes, ${g.count} elements of ${g.dtype} need ${g.count * PLAN_DTYPE_BYTES[g.dtype]}`;
    if (g.count % g.fanIn !== 0) return `${what}: ${g.count} elements are not a multiple of fanIn ${g.fanIn}`;
    if (b.offset < plan.weights.bytes) return `${what}: '${b.name}' starts at byte ${b.offset}, inside weights.bin (${plan.weights.bytes} bytes)`;
    spans.push([b.offset, b.offset + b.bytes, g.buf]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]![0] < spans[i - 1]![1]) return `generated weights of buffers ${spans[i - 1]![2]} and ${spans[i]![2]} overlap`;
  }
  return undefined;
}

/** Fills every generated weight into `weights` (the whole weights space; the tail starts zeroed). */
export function fillGeneratedWeights(plan: Plan, weights: Uint8Array): void {
  const byId = new Map(plan.buffers.map((b) => [b.id, b]));
  for (const g of plan.weights.generated) {
    const b = byId.get(g.buf)!;
    fillGeneratedWeight(g, weights.subarray(b.offset, b.offset + b.bytes));
  }
}
