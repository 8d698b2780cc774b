/**
 * The mesh flags every command that compiles for a mesh shares (inspect, check, compile and
 * denoise): `--ulysses U --ring R --cfg C`, and `--rows-parallel W` (check, compile, inspect: the
 * VAE decoder's image rows over W ranks of the ring axis), kept as the strings the user typed so that
 * meshFromOptions (@paradit/passes) can reject `0`, `-1` or `two` with one message that names the
 * flag, instead of a silently ignored NaN.
 */
import type { Command } from 'commander';
import { IrError, makeMesh, worldSize } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import { hasMeshOptions, meshFromOptions } from '@paradit/passes';
import type { MeshFlags } from '@paradit/passes';

export function addMeshFlags(cmd: Command, what: string): Command {
  return cmd
    .option('--ulysses <n>', `Ulysses (all-to-all) degree: ${what}`)
    .option('--ring <n>', 'ring-attention degree')
    .option('--cfg <n>', 'CFG-parallel degree (splits a batch of 2)');
}

/** The mesh the flags ask for; undefined when none was given (run unsharded). */
export function meshFromFlags(opts: MeshFlags): Mesh | undefined {
  return hasMeshOptions(opts) ? meshFromOptions(opts) : undefined;
}

/** `--rows-parallel W` (check, compile, inspect): split a VAE decoder's image rows over W ranks. */
export function addRowsParallelFlag(cmd: Command): Command {
  return cmd.option('--rows-parallel <W>', 'rows-parallel degree: split the image rows of a VAE decoder over W ranks (exact conv halos; mesh axis ring); not with --ulysses/--ring/--cfg');
}

interface ParallelFlags extends MeshFlags {
  readonly rowsParallel?: string;
}

/** What the mesh flags ask for: a mesh (undefined: unsharded) and whether it splits image rows. */
export interface ParallelChoice {
  readonly mesh?: Mesh;
  /** The rows-parallel degree W (the mesh is then ring = W); undefined for sequence/CFG meshes. */
  readonly rowsParallel?: number;
}

/** The mesh and mode of `--rows-parallel W` or `--ulysses/--ring/--cfg` (mixing them is refused). */
export function parallelFromFlags(opts: ParallelFlags): ParallelChoice {
  if (opts.rowsParallel === undefined) {
    const mesh = meshFromFlags(opts);
    return mesh ? { mesh } : {};
  }
  if (hasMeshOptions(opts)) {
    throw new IrError('E_INPUT', '--rows-parallel cannot be combined with --ulysses, --ring or --cfg: rows-parallel splits the image rows of a VAE decoder over one mesh axis, the others split a transformer\'s tokens or batch; give one or the other');
  }
  const text = String(opts.rowsParallel).trim();
  const w = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(w) || w < 1) throw new IrError('E_INPUT', `--rows-parallel must be a positive integer (the number of ranks the image rows are split over), got '${opts.rowsParallel}'; e.g. --rows-parallel 2`);
  return { mesh: makeMesh({ ring: w }), rowsParallel: w };
}

/** `rows-parallel 2 (mesh axis ring, 2 ranks)` or `mesh ulysses U x ring R x cfg C (W ranks)`. */
export function describeParallel(c: ParallelChoice): string {
  if (!c.mesh) return 'one process';
  if (c.rowsParallel !== undefined) return `rows-parallel ${c.rowsParallel} (image rows split over mesh axis ring, ${c.rowsParallel} ranks)`;
  const m = c.mesh;
  return `mesh ulysses ${m.ulysses} x ring ${m.ring} x cfg ${m.cfg} (${worldSize(m)} ranks)`;
}

/** `--comm-dtype fp8` (compile, check, inspect; docs/fp8.md): context-parallel attention payloads as e4m3. */
export const COMM_DTYPE_FLAG = [
  '--comm-dtype <dtype>',
  'with --ulysses/--ring: fp8 moves the attention all-to-all and ring K/V payloads as e4m3 with per-row fp32 scales (about half the bf16 bytes); default: the storage dtype',
] as const;

export function addCommDtypeFlag(cmd: Command): Command {
  return cmd.option(...COMM_DTYPE_FLAG);
}

/**
 * The value of `--comm-dtype` (undefined: the storage dtype). Refused without a sequence mesh
 * (nothing would move) and under rows-parallel (its halos and sums are not attention payloads).
 */
export function commDtypeFromFlags(value: string | undefined, c: ParallelChoice): 'fp8' | undefined {
  if (value === undefined) return undefined;
  if (value !== 'fp8') throw new IrError('E_INPUT', `--comm-dtype ${value}: expected fp8 (the only communication dtype other than the storage dtype); drop the flag for the storage dtype`);
  if (c.rowsParallel !== undefined) throw new IrError('E_INPUT', '--comm-dtype fp8 with --rows-parallel: rows-parallel moves conv halos and GroupNorm sums, not attention payloads; drop --comm-dtype');
  if (!c.mesh || c.mesh.ring * c.mesh.ulysses <= 1) throw new IrError('E_INPUT', '--comm-dtype fp8 quantizes the Ulysses all-to-all and ring K/V transfers; without --ulysses N or --ring N (N > 1) nothing moves them: add one, or drop --comm-dtype');
  return 'fp8';
}
