/**
 * Runs any compiled plan end to end on the GPU without the CLI: load (validate, upload weights,
 * NVRTC if needed, tune gemms, capture the step graph), feed test_data_set_N/input_K.pb (K in
 * plan.inputs order), compare with output_K.pb (relative L2), and time graph replays.
 *   node .gpu-work/runtime/run-plan.cjs PLAN_DIR [--data DIR] [--steps N] [--bench N] [--eager] [--tol X]
 * Exit status 1 when an output misses the tolerance (default 1e-3 for f32 plans, 5e-2 otherwise).
 */
import { Tensor } from '@paradit/ir';
import { loadCudaRuntime } from '../../packages/runtime/src/index';
import { readTestDataSet } from '../../packages/runtime/src/test-data';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function relL2(got: Tensor, want: Tensor): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.size; i++) {
    const d = got.data[i]! - want.data[i]!;
    num += d * d;
    den += want.data[i]! * want.data[i]!;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir || dir.startsWith('--')) throw new Error('usage: run-plan.cjs PLAN_DIR [--data DIR] [--steps N] [--bench N] [--eager] [--tol X]');
  const rt = loadCudaRuntime();
  const b = rt.CudaBackend.load(dir, { graphs: !process.argv.includes('--eager'), log: (l) => console.log(`load: ${l}`) });
  try {
    const r = b.report;
    console.log(`device ${r.device.name}; kernels ${r.kernels}; ${r.gemms} gemms (${r.gemmsTuned} tuned); graph ${r.graph}${r.graphNodes !== undefined ? ` (${r.graphNodes} nodes)` : ''}; load ${r.loadMs.toFixed(0)} ms`);
    const data = flag('--data');
    let failed = false;
    if (data) {
      const set = readTestDataSet(data);
      if (set.inputs.length !== b.plan.inputs.length) throw new Error(`${data}: ${set.inputs.length} input_K.pb files, the plan takes ${b.plan.inputs.length} inputs (${b.inputNames.join(', ')})`);
      const inputs = new Map(b.plan.inputs.map((io, k) => [io.name, set.inputs[k]!]));
      const tol = Number(flag('--tol') ?? (b.plan.target.dtype === 'f32' ? 1e-3 : 5e-2));
      const steps = Number(flag('--steps') ?? 1);
      for (let s = 0; s < steps; s++) {
        const t0 = performance.now();
        const outs = await b.step(inputs);
        const wall = performance.now() - t0;
        const parts = b.plan.outputs.map((io, k) => {
          const want = set.outputs[k];
          if (!want) return `${io.name}: (no reference)`;
          const e = relL2(outs.get(io.name)!, want);
          if (!(e <= tol)) failed = true;
          return `${io.name}: relL2 ${e.toExponential(2)}${e <= tol ? '' : ` > ${tol} FAIL`}`;
        });
        console.log(`step ${s} (${wall.toFixed(1)} ms wall incl. copies): ${parts.join('; ')}`);
      }
    }
    const n = Number(flag('--bench') ?? 0);
    if (n > 0) {
      const res = b.bench(n, 5);
      console.log(`bench: ${res.steps} ${res.mode} steps, median ${res.medianMs.toFixed(3)} ms (min ${res.minMs.toFixed(3)}, max ${res.maxMs.toFixed(3)})`);
    }
    process.exitCode = failed ? 1 : 0;
  } finally {
    b.dispose();
  }
}

main().catch((e) => {
  console.error((e as Error).message);
  process.exit(1);
});
