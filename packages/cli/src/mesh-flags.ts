/**
 * The mesh flags every command that compiles for a mesh shares (inspect, check, and later compile
 * and denoise): `--ulysses U --ring R --cfg C`, kept as the strings the user typed so that
 * meshFromOptions (@paradit/passes) can reject `0`, `-1` or `two` with one message that names the
 * flag, instead of a silently ignored NaN.
 */
import type { Command } from 'commander';
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
