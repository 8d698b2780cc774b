/**
 * Reads a plan directory for the CUDA backend: plan.json validated by the zod schema, the kernel
 * source and optional cubin. (The shared loader in plan/load.ts replaces this once it lands; the
 * backend only needs `LoadedPlanFiles`.) Weights are streamed separately (see weights.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { PLAN_FORMAT, Plan, planSchema } from '../plan/schema';

export interface LoadedPlanFiles {
  readonly dir: string;
  readonly plan: Plan;
  readonly source: string;
  readonly cubin: Uint8Array | undefined;
  readonly weightsPath: string;
}

export function readPlanFiles(dir: string): LoadedPlanFiles {
  const jsonPath = path.join(dir, 'plan.json');
  if (!fs.existsSync(jsonPath)) throw new Error(`${dir}: not a plan directory (no plan.json)`);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
  } catch (e) {
    throw new Error(`${jsonPath}: not valid JSON (${(e as Error).message})`);
  }
  if ((raw as { format?: unknown })?.format !== PLAN_FORMAT) throw new Error(`${jsonPath}: not a ParaDiT plan (format is not '${PLAN_FORMAT}')`);
  const parsed = planSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new Error(`${jsonPath}: invalid plan:\n  ${issues.join('\n  ')}`);
  }
  const plan = parsed.data;
  const sourcePath = path.join(dir, plan.kernels.source);
  const source = fs.existsSync(sourcePath) ? fs.readFileSync(sourcePath, 'utf8') : '';
  const cubinPath = plan.kernels.cubin ? path.join(dir, plan.kernels.cubin) : undefined;
  const cubin = cubinPath && fs.existsSync(cubinPath) ? new Uint8Array(fs.readFileSync(cubinPath)) : undefined;
  return { dir, plan, source, cubin, weightsPath: path.join(dir, plan.weights.file) };
}

/** Checks buffer placement against the spaces (cheap; catches a corrupt plan before any launch). */
export function checkBuffers(plan: Plan): void {
  for (const b of plan.buffers) {
    const size = plan.spaces[b.space];
    if (b.offset + b.bytes > size) {
      throw new Error(`buffer ${b.id} '${b.name}' ([${b.offset}, ${b.offset + b.bytes}) in ${b.space}) lies outside the ${b.space} space (${size} bytes)`);
    }
  }
}
