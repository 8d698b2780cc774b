/**
 * The mesh a context-parallel pass compiles for: PassOptions.mesh (pass.ts), read with meshOf and
 * set with withMesh; and meshFromOptions, the one place that turns the CLI's --ulysses/--ring/--cfg
 * (strings or numbers, any of them absent) into a validated Mesh for inspect, check, compile and
 * denoise alike.
 */
import { IrError, Mesh, makeMesh } from '@paradit/ir';
import type { PassContext, PassOptions } from '../../pass';

/** The degrees as given on a command line (commander strings) or by a caller (numbers). */
export interface MeshFlags {
  readonly ulysses?: number | string;
  readonly ring?: number | string;
  readonly cfg?: number | string;
}

/** The context's mesh (PassOptions.mesh; 1x1x1 unless set). */
export function meshOf(ctx: PassContext): Mesh {
  return ctx.options.mesh;
}

/** The same context compiling for `mesh`. */
export function withMesh(ctx: PassContext, mesh: Mesh): PassContext {
  const options: PassOptions = { ...ctx.options, mesh };
  return Object.freeze({ ...ctx, options: Object.freeze(options) });
}

/** True when any mesh degree was given (even an invalid one: meshFromOptions then says why). */
export function hasMeshOptions(o: MeshFlags): boolean {
  return o.ulysses !== undefined || o.ring !== undefined || o.cfg !== undefined;
}

function degree(flag: 'ulysses' | 'ring' | 'cfg', v: number | string | undefined): number {
  if (v === undefined) return 1;
  const text = String(v).trim();
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new IrError('E_INPUT', `--${flag} must be a positive integer (the number of ranks on that mesh axis), got '${String(v)}'; e.g. --ulysses 2 --ring 2 --cfg 1`);
  }
  return n;
}

/** The validated mesh of `--ulysses U --ring R --cfg C` (absent degrees are 1). */
export function meshFromOptions(o: MeshFlags): Mesh {
  return makeMesh({ ulysses: degree('ulysses', o.ulysses), ring: degree('ring', o.ring), cfg: degree('cfg', o.cfg) });
}
