/**
 * The mesh a context-parallel pass compiles for, carried in the PassContext options (`mesh`).
 * PassOptions does not declare the field yet, so it is read and set through these helpers.
 */
import { Mesh, makeMesh } from '@paradit/ir';
import type { PassContext, PassOptions } from '../pass';

export interface MeshOptions {
  readonly mesh: Mesh;
}

/** The context's mesh; a 1x1x1 mesh (no parallelism) when none was given. */
export function meshOf(ctx: PassContext): Mesh {
  return (ctx.options as PassOptions & Partial<MeshOptions>).mesh ?? makeMesh();
}

/** The same context compiling for `mesh`. */
export function withMesh(ctx: PassContext, mesh: Mesh): PassContext {
  const options: PassOptions & MeshOptions = { ...ctx.options, mesh };
  return Object.freeze({ ...ctx, options: Object.freeze(options) });
}
