/**
 * `paradit run PLAN --inputs DIR [--compare] [--bench N] [--backend cpu|cuda]`: runs one step of a
 * compiled plan on input_K.pb files (DIR is a test_data_set_* folder, or a model folder whose first
 * test_data_set_* is used), prints the outputs, and with --compare checks them against output_K.pb
 * (relative L2 <= 1e-3 for fp32 plans, 5e-2 for bf16/fp16 plans). Exit 1 on a mismatch, 2 on bad
 * input. The CUDA backend is loaded only when asked for.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { IrError, Tensor, isIrError, writeTensorFile } from '@paradit/ir';
import { FBCACHE_NAMES, FBCACHE_PREFIX, RankFailure, compareTensors, listTestDataSets, loadPlan, openPlan, readTestDataSet, withinTolerance } from '@paradit/runtime';
import type { Plan, TestDataSet } from '@paradit/runtime';
import { EXIT_MISMATCH, EXIT_OK, fsUserError } from '../errors';
import { DEFAULT_TIMEOUT_S, withRank } from '../launched';
import type { RankContext } from '../launched';

/** --save names a folder (made when missing): refused before the step runs when it cannot be one. */
function checkSaveDir(dir: string): void {
  if (dir.trim() === '') throw new IrError('E_INPUT', "--save '': the folder path is empty; pass the folder to write output_K.pb into");
  let p = path.resolve(dir);
  while (!fs.existsSync(p)) p = path.dirname(p);
  if (!fs.statSync(p).isDirectory()) {
    const where = p === path.resolve(dir) ? 'it is a file' : `${p} is a file`;
    throw new IrError('E_INPUT', `--save ${dir}: ${where}, not a folder; pass a folder for the output_K.pb files`);
  }
}

interface RunFlags {
  inputs: string;
  compare?: boolean;
  bench?: string;
  backend: string;
  tolerance?: string;
  verifyWeights: boolean;
  save?: string;
  json?: boolean;
  timeout?: string;
}

/**
 * Tolerance of `run --compare`: 1e-3 relative L2 for an fp32 plan checked against an fp32
 * reference, 5e-2 when either the plan or the reference is bf16/fp16, 0.1 for fp8 plans (one e4m3
 * layer costs ~0.037 rel. L2; docs/fp8.md derives it and records what the fixtures measure).
 */
export const FP8_PLAN_TOLERANCE = 0.1;

export function planTolerance(plan: Plan, ref: Tensor): number {
  if (plan.target.dtype === 'fp8') return FP8_PLAN_TOLERANCE;
  return plan.target.dtype === 'f32' && ref.dtype === 'f32' ? 1e-3 : 5e-2;
}

function findDataSet(dir: string): TestDataSet {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new IrError('E_INPUT', `--inputs ${dir} is not a folder; pass a test_data_set_* folder (input_K.pb files) or a model folder that has one`);
  if (fs.existsSync(path.join(dir, 'input_0.pb'))) return readTestDataSet(dir);
  const sets = listTestDataSets(dir);
  if (sets.length === 0) throw new IrError('E_INPUT', `--inputs ${dir} has neither input_0.pb nor test_data_set_* folders; write one input_K.pb per plan input, in order`);
  return readTestDataSet(sets[0]!);
}

/** Dtypes a plan stores (docs/plan-format.md); float data is converted to the plan's float dtype. */
const PLAN_DTYPES: ReadonlySet<string> = new Set(['f32', 'f16', 'bf16', 'i32', 'i64', 'bool', 'u8']);
const FLOATS: ReadonlySet<string> = new Set(['f32', 'f16', 'bf16']);

/**
 * One rule with `check`: an input file must hold a dtype the plan can take. Float data among
 * f32/f16/bf16 is converted to the plan's storage dtype (a bf16 plan of an f32 model takes the
 * model's f32 test data); anything else (f64 for an f32 plan, i32 for i64) is refused.
 */
function checkInputDtypes(plan: Plan, modelInputs: readonly { name: string; buf: number }[], set: TestDataSet): void {
  modelInputs.forEach((x, k) => {
    const t = set.inputs[k]!;
    const b = plan.buffers.find((y) => y.id === x.buf)!;
    const ok = t.dtype === b.dtype || (PLAN_DTYPES.has(t.dtype) && FLOATS.has(t.dtype) && FLOATS.has(b.dtype));
    if (!ok) {
      throw new IrError('E_INPUT', `${path.join(set.dir, `input_${k}.pb`)}: input '${x.name}' of the plan is ${b.dtype}[${b.shape.join(',')}], but the file holds ${t.dtype}[${t.shape.join(',')}]; write the input in the model's dtype (${FLOATS.has(b.dtype) ? 'f32, f16 or bf16' : b.dtype}), as check requires too`);
    }
  });
}

/** Default First Block Cache controls: the compile-time threshold, no forced compute, no cap. */
function fbcacheControls(plan: Plan): [string, Tensor][] {
  return [
    [FBCACHE_NAMES.threshold, Tensor.scalar('f32', plan.stats['fbcacheThreshold'] ?? 0)],
    [FBCACHE_NAMES.mustCompute, Tensor.scalar('bool', 0)],
    [FBCACHE_NAMES.maxCached, Tensor.scalar('f32', Infinity)],
  ];
}

const e = (x: number): string => (x === 0 ? '0' : x.toExponential(2));

export function runCommand(program: Command, setCode: (c: number) => void): void {
  program
    .command('run')
    .description('run one step of a compiled plan on input_K.pb files (and compare or benchmark)')
    .argument('<plan>', 'plan directory written by `paradit compile`')
    .requiredOption('--inputs <dir>', 'test_data_set_* folder with input_K.pb (or a model folder holding one)')
    .option('--compare', 'compare outputs with output_K.pb of the same folder')
    .option('--bench <n>', 'time n steps after warm-up and print the median')
    .option('--backend <name>', 'cpu (IR reference of every instruction) or cuda', 'cpu')
    .option('--tolerance <relL2>', 'relative L2 tolerance for --compare (default 1e-3 fp32 plans, 5e-2 bf16/fp16)')
    .option('--no-verify-weights', 'skip the sha256 check of weights.bin (faster load)')
    .option('--save <dir>', 'write the outputs as DIR/output_K.pb (ONNX TensorProto, plan output order)')
    .option('--json', 'print one JSON object')
    .option('--timeout <s>', `launched ranks: how long a rank waits for its peers before giving up (default ${DEFAULT_TIMEOUT_S}, or PARADIT_TIMEOUT)`)
    .action(async (planDir: string, flags: RunFlags) => {
      const launched = await withRank(flags.timeout, (rank) => runPlan(planDir, flags, rank));
      setCode(launched ? launched.value : await runPlan(planDir, flags, undefined));
    });
}

/**
 * One step of the plan (and --compare, --bench, --save). As a rank of a launched job (`rank`):
 * this process runs its rank only; every rank reads the inputs (the plan's shard_slice takes its
 * part), rank 0 checks that all ranks computed the same outputs and prints, saves and compares.
 */
async function runPlan(planDir: string, flags: RunFlags, rank: RankContext | undefined): Promise<number> {
  if (flags.backend !== 'cpu' && flags.backend !== 'cuda') throw new IrError('E_INPUT', `--backend ${flags.backend}: expected cpu or cuda`);
  const bench = flags.bench === undefined ? 0 : Number(flags.bench);
  if (!Number.isInteger(bench) || bench < 0) throw new IrError('E_INPUT', `--bench ${flags.bench}: expected a whole number of steps`);
  if (flags.save !== undefined) checkSaveDir(flags.save);
  const set = findDataSet(path.resolve(flags.inputs));
  let dist = {};
  if (rank) {
    // Before the (long) load: every rank agrees it runs the same plan on a world of its mesh.
    rank.beforeLoad();
    const plan = loadPlan(path.resolve(planDir), { backend: flags.backend, verifyWeights: false }).plan;
    await rank.checkPlan(plan, planDir);
    // CUDA: NCCL even in a world of one (a launch is how the NCCL path is exercised).
    // Its load log (NCCL version, the NCCL_* defaults it set, graph capture) goes to stderr: `[rank R] cuda: ...`.
    dist = { dist: rank.dist(plan), nccl: flags.backend === 'cuda', log: (l: string) => void process.stderr.write(`paradit: ${flags.backend}: ${l}\n`) };
  }
  const opened = await openPlan(path.resolve(planDir), { backend: flags.backend, verifyWeights: flags.verifyWeights, ...dist }).catch((e: unknown) => {
    // No GPU, driver or koffi is the machine's state, not a ParaDiT bug: one paragraph, exit 2.
    if (flags.backend === 'cuda' && !isIrError(e) && !(e instanceof RankFailure)) {
      throw new IrError('E_RUNTIME', `--backend cuda could not start on this machine: ${(e as Error).message.replace(/\s*\n\s*/g, ' ')}; run on a machine with an NVIDIA GPU and its driver (and koffi installed), or use --backend cpu`);
    }
    throw e;
  });
  try {
    const plan = opened.loaded.plan;
    // First Block Cache controls are not model inputs: they get the plan's defaults.
    const modelInputs = plan.inputs.filter((x) => !x.name.startsWith(FBCACHE_PREFIX));
    if (set.inputs.length !== modelInputs.length) {
      throw new IrError('E_INPUT', `${set.dir} has ${set.inputs.length} input_K.pb files but the plan takes ${modelInputs.length} inputs (${modelInputs.map((x) => x.name).join(', ')}); provide one per input, in that order`);
    }
    checkInputDtypes(plan, modelInputs, set);
    const inputs = new Map<string, Tensor>(modelInputs.map((x, k) => [x.name, set.inputs[k]!]));
    for (const [k, t] of fbcacheControls(plan)) if (plan.inputs.some((x) => x.name === k)) inputs.set(k, t);
    opened.executor.resetState();
    rank?.beforeStep();
    const t0 = performance.now();
    const outs = await opened.executor.step(inputs);
    const firstMs = performance.now() - t0;
    await rank?.checkOutputs(outs);
    const root = !rank || rank.isRoot;
    const report: Record<string, unknown> = { plan: planDir, backend: flags.backend, dataSet: set.dir, stepMs: firstMs };
    report['outputs'] = [...outs].map(([name, t]) => ({ name, dtype: t.dtype, shape: [...t.shape] }));
    if (flags.save && root) {
      const save = flags.save;
      try {
        fs.mkdirSync(save, { recursive: true });
        plan.outputs.forEach((x, k) => writeTensorFile(path.join(save, `output_${k}.pb`), outs.get(x.name)!, x.name));
      } catch (e) {
        throw fsUserError(e, `--save ${save}`) ?? e;
      }
      report['saved'] = save;
    }
    let ok = true;
    if (flags.compare && root) {
      if (set.outputs.length === 0) throw new IrError('E_INPUT', `--compare: ${set.dir} has no output_K.pb files to compare with`);
      const checks = plan.outputs.slice(0, set.outputs.length).map((x, k) => {
        const got = outs.get(x.name)!;
        const ref = set.outputs[k]!;
        const tol = flags.tolerance !== undefined ? Number(flags.tolerance) : planTolerance(plan, ref);
        if (got.size !== ref.size) throw new IrError('E_INPUT', `output '${x.name}' is [${got.shape.join(',')}] but ${set.dir}/output_${k}.pb is [${ref.shape.join(',')}]`);
        const c = compareTensors(got, ref);
        return { output: x.name, maxAbs: c.maxAbs, relL2: c.relL2, tolerance: tol, ok: withinTolerance(c, tol) };
      });
      ok = checks.every((c) => c.ok);
      report['checks'] = checks;
    }
    if (bench > 0) {
      if (opened.bench) report['bench'] = opened.bench(bench);
      else {
        const times: number[] = [];
        for (let i = 0; i < bench; i++) {
          const s = performance.now();
          await opened.executor.step(inputs);
          times.push(performance.now() - s);
        }
        times.sort((a, b) => a - b);
        report['bench'] = { steps: bench, medianMs: times[Math.floor(times.length / 2)], minMs: times[0], maxMs: times[times.length - 1], mode: 'cpu' };
      }
    }
    if (rank) report['ranks'] = rank.env.world;
    // CUDA: how the plan was loaded (collectives 'nccl' for a launched rank, the NCCL version, graph capture).
    const load = (opened.executor as { report?: { collectives?: string; ncclVersion?: string; graph?: string; rank?: number; world?: number } }).report;
    if (load) report['load'] = { collectives: load.collectives, ncclVersion: load.ncclVersion, graph: load.graph, rank: load.rank, world: load.world };
    if (!root) return EXIT_OK;
    if (flags.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    else {
      const ranks = rank && rank.env.world > 1 ? `, ${rank.env.world} ranks launched by ${rank.env.launcher}` : '';
      const lines = [`run ${planDir} on ${flags.backend}${ranks} (${set.dir}): step ${firstMs.toFixed(1)} ms`];
      for (const [name, t] of outs) lines.push(`  output ${name}: ${t.dtype}[${t.shape.join(',')}]`);
      for (const c of (report['checks'] as { output: string; maxAbs: number; relL2: number; tolerance: number; ok: boolean }[] | undefined) ?? []) {
        lines.push(`  compare ${c.output}: max |err| ${e(c.maxAbs)}, rel L2 ${e(c.relL2)} (tol ${e(c.tolerance)}) ${c.ok ? 'ok' : 'MISMATCH'}`);
      }
      const b = report['bench'] as { steps: number; medianMs: number; mode: string } | undefined;
      if (b) lines.push(`  bench: median ${b.medianMs.toFixed(3)} ms over ${b.steps} steps (${b.mode})`);
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    return ok ? EXIT_OK : EXIT_MISMATCH;
  } finally {
    opened.dispose();
  }
}
