/**
 * Reading the compile-time operands of data-movement ops (Slice bounds, Split sizes, Reshape
 * targets, Gather indices, Reduce axes) from constant inputs or attributes, the way the
 * interpreter's rules do, so the planner can turn them into views.
 */
import type { Node, Value } from '@paradit/ir';
import { AttrReader } from '@paradit/ir';
import { CodegenError } from './codegen-error';

export function attrs(node: Node): AttrReader {
  return new AttrReader(node.attrs, (m) => {
    throw CodegenError.at(node, m);
  });
}

/** A constant input's values, or a readable error when it is not known at compile time. */
export function constInts(node: Node, i: number, what: string): number[] | undefined {
  const v: Value | null | undefined = node.inputs[i];
  if (!v) return undefined;
  if (!v.constant) throw CodegenError.at(node, `input ${i} (${what}) must be a compile-time constant for a CUDA kernel (shapes are static)`);
  return Array.from(v.constant.tensor().data, (x) => Number(x));
}

/** The attribute form (old opsets) when the node carries the attribute, else input i. */
function attrOrInput(node: Node, name: string, i: number): number[] | undefined {
  const a = attrs(node).optInts(name);
  if (a) return [...a];
  return constInts(node, i, name);
}

export function normAxis(node: Node, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw CodegenError.at(node, `axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/** Clamped start of a slice along a dim of size d (ONNX rules; the length comes from the type). */
function sliceStart(start: number, step: number, d: number): number {
  const s = start < 0 ? start + d : start;
  return step > 0 ? Math.min(Math.max(s, 0), d) : Math.min(Math.max(s, 0), d - 1);
}

export interface SliceSpec {
  readonly starts: number[];
  readonly steps: number[];
}

/** Per-dim start and step of a Slice node over an input of shape `shape`. */
export function sliceSpec(node: Node, shape: readonly number[]): SliceSpec {
  const starts = attrOrInput(node, 'starts', 1) ?? [];
  const axesIn = attrOrInput(node, 'axes', 3);
  const stepsIn = node.attrs['starts'] ? undefined : constInts(node, 4, 'steps');
  const out: SliceSpec = { starts: shape.map(() => 0), steps: shape.map(() => 1) };
  starts.forEach((s, k) => {
    const ax = normAxis(node, axesIn ? axesIn[k]! : k, shape.length);
    const step = stepsIn ? stepsIn[k]! : 1;
    out.starts[ax] = sliceStart(s, step, shape[ax]!);
    out.steps[ax] = step;
  });
  return out;
}

/** Reduce axes (sorted, normalized); [] = nothing reduced (noop_with_empty_axes). */
export function reduceAxes(node: Node, rank: number): number[] {
  const raw = attrOrInput(node, 'axes', 1);
  const noop = attrs(node).int('noop_with_empty_axes', 0) === 1;
  if (!raw || raw.length === 0) return noop ? [] : Array.from({ length: rank }, (_, i) => i);
  return [...new Set(raw.map((a) => normAxis(node, a, rank)))].sort((a, b) => a - b);
}
