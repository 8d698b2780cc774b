/**
 * specialize-shapes: binds every symbolic input dim to a size (from the test data or `--shape
 * name=d0,d1,..`) and re-infers the graph, so every value has a static shape and shape arithmetic
 * folds to constants. Plans are static: buffers have fixed offsets.
 *
 *   before:  graph main(%0: f32[B,S,64]) { %1 = Reshape(%0, ...) : f32[B,S,4,16] }
 *   after:   graph main(%0: f32[1,256,64]) { %1 = Reshape(%0, ...) : f32[1,256,4,16] }
 */
import { Graph, IrError, Module, TensorType, isStaticShape, tensorType } from '@paradit/ir';
import { rebuildModule } from '@paradit/ir';
import type { Pass } from '@paradit/passes';

export type ShapeBindings = ReadonlyMap<string, readonly number[]>;

/** Parses `name=d0,d1,..` (repeatable `--shape`). */
export function parseShapeOption(specs: readonly string[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const s of specs) {
    const m = /^([^=]+)=([0-9]+(?:,[0-9]+)*)$/.exec(s.trim());
    if (!m) throw new IrError('E_INPUT', `--shape ${s}: expected name=d0,d1,.. (e.g. --shape hidden_states=1,4096,64)`);
    out.set(m[1]!, m[2]!.split(',').map(Number));
  }
  return out;
}

function inputType(g: Graph, i: number, bindings: ShapeBindings): TensorType | undefined {
  const v = g.inputs[i]!;
  const given = bindings.get(v.name);
  if (!given) return undefined;
  const ok = given.length === v.shape.length && v.shape.every((d, k) => typeof d === 'string' || d === given[k]);
  if (!ok) {
    throw new IrError('E_INPUT', `--shape ${v.name}=${given.join(',')}: the model declares ${v.dtype}[${v.shape.join(',')}]; give one size per axis, equal to the fixed ones`);
  }
  return tensorType(v.dtype, given);
}

/** Checks that everything is static after binding; names the first value that is not. */
function requireStatic(g: Graph): void {
  const bad = g.inputs.find((v) => !isStaticShape(v.shape));
  if (bad) {
    throw new IrError(
      'E_INPUT',
      `input '${bad.name}' has symbolic dims [${bad.shape.join(',')}] and no size was given; pass --shape ${bad.name}=<d0,d1,..> or compile with test data next to the model`,
    );
  }
  const walk = (gr: Graph): void => {
    for (const n of gr.nodes) {
      for (const o of n.outputs) {
        if (!isStaticShape(o.shape)) {
          throw new IrError('E_UNSUPPORTED', `${n.label}: output shape [${o.shape.join(',')}] is still symbolic after binding the inputs; plans need static shapes (the shape depends on data)`, n.name);
        }
      }
      n.subgraphs().forEach(walk);
    }
  };
  walk(g);
}

export function specializeShapes(m: Module, bindings: ShapeBindings): Module {
  const g = m.graph;
  // A binding for a name that is no input (a typo) would silently do nothing: refuse it.
  for (const [name, dims] of bindings) {
    if (!g.inputs.some((v) => v.name === name)) {
      throw new IrError('E_INPUT', `--shape ${name}=${dims.join(',')}: the model has no input '${name}'; its inputs are ${g.inputs.map((v) => `${v.name} ${v.dtype}[${v.shape.join(',')}]`).join(', ')}`);
    }
  }
  const types = g.inputs.map((_, i) => inputType(g, i, bindings));
  const out = types.some((t) => t !== undefined) ? rebuildModule(m, { inputTypes: types }) : m;
  requireStatic(out.graph);
  return out;
}

/** The pass form of `specializeShapes` for the given bindings (the compile driver's pipeline). */
export function specializeShapesPass(bindings: ShapeBindings): Pass {
  return { name: 'specialize-shapes', description: 'binds symbolic input dims to the shapes of --shape or the test data', run: (m) => specializeShapes(m, bindings) };
}
