/** Shared helpers of the plan tests: compile a module into a temp dir and run it on the CPU backend. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Module, Tensor, interpret } from '@paradit/ir';
import { writePlan } from '@paradit/codegen-cuda';
import { compileModule } from '@paradit/compiler';
import type { PlanPrecision } from '@paradit/codegen-cuda';
import type { CompiledModule, LowerToPlanOptions } from '@paradit/compiler';
import { CpuPlanBackend, compareTensors, loadPlan } from '@paradit/runtime';
import type { Plan } from '@paradit/runtime';

export function tempDir(prefix = 'paradit-plan-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface PlanRun {
  readonly compiled: CompiledModule;
  readonly plan: Plan;
  readonly dir: string;
  readonly outputs: Map<string, Tensor>;
}

export function planMeta(dtype: PlanPrecision) {
  return {
    compiledFrom: { model: 'in-memory', modelSha256: '0'.repeat(64), paradit: '0.1.0', createdAt: new Date(0).toISOString() },
    target: { backend: 'cuda' as const, arch: 'sm_90a', dtype, mesh: { cfg: 1, ring: 1, ulysses: 1 } },
  };
}

/** Compiles `m` into a fresh temp dir (no nvcc) and opens it on the CPU backend. */
export async function compilePlanDir(m: Module, dtype: PlanPrecision, opts: Partial<LowerToPlanOptions> = {}): Promise<{ compiled: CompiledModule; plan: Plan; dir: string; backend: CpuPlanBackend }> {
  const compiled = compileModule(m, { dtype, verify: true, ...opts });
  const dir = path.join(tempDir(), 'plan');
  const written = await writePlan(dir, compiled.built, compiled.memory, planMeta(dtype), { nvcc: false });
  return { compiled, plan: written.plan, dir, backend: new CpuPlanBackend(loadPlan(dir)) };
}

/** Compiles `m`, writes it under a fresh temp dir (no nvcc), loads it and runs one CPU step. */
export async function compileAndRun(m: Module, dtype: PlanPrecision, inputs: readonly Tensor[]): Promise<PlanRun> {
  const { compiled, plan, dir, backend } = await compilePlanDir(m, dtype);
  const written = { plan };
  const named = new Map(m.graph.inputs.map((v, i) => [v.name, inputs[i]!]));
  const outputs = await backend.step(named);
  return { compiled, plan: written.plan, dir, outputs };
}

/** Relative L2 of each plan output against the interpreter on `ref` (same inputs). */
export function relErrors(ref: Module, inputs: readonly Tensor[], outputs: Map<string, Tensor>): number[] {
  const want = interpret(ref, inputs);
  return ref.graph.outputs.map((v, k) => {
    const got = outputs.get(v.name || `output_${k}`)!;
    return compareTensors(got, want[k]!).relL2;
  });
}
