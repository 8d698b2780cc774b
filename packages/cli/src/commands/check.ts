/**
 * `paradit check DIR`: runs every test_data_set_* of an ONNX model-zoo folder through the
 * reference interpreter and compares each output with its reference. Exit 0 when every output is
 * within tolerance, 1 on a mismatch, 2 on bad input.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { IrError, Module, Tensor, interpret, loadModel, worldSize } from '@paradit/ir';
import {
  compareTensors,
  defaultTolerance,
  parseLaunchEnv,
  readTestDataSet,
  validateTestData,
  withinTolerance,
} from '@paradit/runtime';
import { simulatedExecutor } from '@paradit/passes';
import { EXIT_MISMATCH, EXIT_OK } from '../errors';
import { DEFAULT_TIMEOUT_S, withRank } from '../launched';
import type { RankContext } from '../launched';
import { addCommDtypeFlag, addMeshFlags, addRowsParallelFlag, commDtypeFromFlags, describeParallel, parallelFromFlags } from '../mesh-flags';
import { keepPatterns } from './compile';
import { FP8_COMM_TOLERANCE, checkModelDirOnPlan, parseCheckBackend, parsePrecision, planCheckHeader } from './check-backend';
import { checkDataSets } from './check-data';

export interface OutputCheck {
  readonly dataSet: string;
  readonly output: string;
  readonly dtype: string;
  readonly shape: number[];
  readonly maxAbs: number;
  readonly relL2: number;
  readonly tolerance: number;
  readonly ok: boolean;
}

export interface CheckReport {
  readonly model: string;
  readonly checks: OutputCheck[];
  readonly ok: boolean;
  readonly seconds: number;
}

interface CheckOptions {
  /** Overrides the dtype-based relative-L2 tolerance. */
  readonly tolerance?: number;
  /** Runs the model on one data set's inputs (defaults to the reference interpreter). */
  readonly execute?: (m: Module, inputs: Tensor[]) => Tensor[];
}

export function checkModelDir(dir: string, opts: CheckOptions = {}): CheckReport {
  const t0 = performance.now();
  const sets = checkDataSets(dir);
  const m = loadModel(dir);
  const execute = opts.execute ?? ((mod: Module, ins: Tensor[]) => interpret(mod, ins));
  const checks: OutputCheck[] = [];
  for (const setDir of sets) {
    const set = readTestDataSet(setDir);
    validateTestData(set, m.graph.inputs, m.graph.outputs);
    if (set.outputs.length === 0) {
      throw new IrError('E_INPUT', `${setDir} has no output_K.pb reference files to compare with`);
    }
    const got = execute(m, set.inputs);
    set.outputs.forEach((ref, k) => {
      const c = compareTensors(got[k]!, ref);
      const tolerance = opts.tolerance ?? defaultTolerance(ref.dtype);
      checks.push({
        dataSet: set.name,
        output: m.graph.outputs[k]!.name || `output_${k}`,
        dtype: ref.dtype,
        shape: [...ref.shape],
        maxAbs: c.maxAbs,
        relL2: c.relL2,
        tolerance,
        ok: withinTolerance(c, tolerance),
      });
    });
  }
  return { model: dir, checks, ok: checks.every((c) => c.ok), seconds: (performance.now() - t0) / 1000 };
}

const e = (x: number): string => (x === 0 ? '0' : x.toExponential(2));

export function formatCheck(r: CheckReport): string {
  const lines = [`check ${r.model}`];
  for (const c of r.checks) {
    lines.push(
      `  ${c.dataSet} ${c.output} ${c.dtype}[${c.shape.join(',')}]: max |err| ${e(c.maxAbs)}, rel L2 ${e(c.relL2)} ` +
        `(tol ${e(c.tolerance)}) ${c.ok ? 'ok' : 'MISMATCH'}`,
    );
  }
  const bad = r.checks.filter((c) => !c.ok).length;
  lines.push(
    bad === 0
      ? `all ${r.checks.length} outputs within tolerance (${r.seconds.toFixed(2)} s)`
      : `${bad} of ${r.checks.length} outputs out of tolerance (${r.seconds.toFixed(2)} s)`,
  );
  return lines.join('\n');
}

export function checkCommand(program: Command, setCode: (c: number) => void): void {
  const cmd = program
    .command('check')
    .description('run an ONNX model-zoo folder (model.onnx + test_data_set_*) and compare with its reference outputs')
    .argument('<dir>', 'model folder')
    .option('--json', 'print one JSON object')
    .option('--tolerance <relL2>', 'relative L2 tolerance (default: 1e-4 for fp32 outputs, 5e-2 for bf16/fp16; with --backend: 1e-3 for fp32 plans, 5e-2 for bf16/fp16)')
    .option('--backend <name>', 'compile a plan and run it: cpu (each instruction\'s IR ref) or cuda (the GPU); default: the reference interpreter on the model')
    .option('--dtype <dtype>', 'with --backend: plan dtype bf16, fp16, fp32 or fp8 (default: fp32 for fp32 models, bf16 for bf16 models; fp8 tolerance 0.1, docs/fp8.md)')
    .option('--keep-bf16 <pattern>', 'with --dtype fp8: layers (ONNX node or weight name; glob or /regex/) that stay bf16 (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--keep-plan <dir>', 'with --backend: write the compiled plan here and keep it')
    .option('--debug-instrs', 'with --backend: compare every instruction\'s outputs with its CPU ref on the same inputs, to localize a mismatch (slow)');
  cmd.option('--timeout <s>', `launched ranks (with --backend): how long a rank waits for its peers (default ${DEFAULT_TIMEOUT_S}, or PARADIT_TIMEOUT)`);
  addMeshFlags(cmd, 'compile for this mesh and run every rank simulated');
  addCommDtypeFlag(cmd);
  addRowsParallelFlag(cmd).action(async (dir: string, opts: CheckFlags) => {
    const tolerance = opts.tolerance === undefined ? undefined : parseTolerance(opts.tolerance);
    const backend = parseCheckBackend(opts.backend);
    if (backend === undefined && (opts.dtype !== undefined || opts.keepPlan !== undefined || opts.debugInstrs)) {
      throw new IrError('E_INPUT', '--dtype, --keep-plan and --debug-instrs configure a compiled plan; add --backend cpu or --backend cuda');
    }
    // Refuses --rows-parallel mixed with --ulysses/--ring/--cfg before any work.
    const parallel = parallelFromFlags(opts);
    const commDtype = commDtypeFromFlags(opts.commDtype, parallel);
    if (backend !== undefined) {
      const mesh = parallel.mesh;
      const dtype = opts.dtype === undefined ? undefined : parsePrecision(opts.dtype);
      const keepBf16 = keepPatterns(opts.keepBf16, dtype ?? '');
      const log = (l: string): void => void process.stderr.write(`${l}\n`);
      // As one rank of a launched job: every rank compiles and runs its rank; rank 0 reports.
      const checkOnPlan = async (rank?: RankContext): Promise<number> => {
        const r = await checkModelDirOnPlan(path.resolve(dir), {
          backend,
          ...(mesh ? { mesh } : {}),
          ...(parallel.rowsParallel !== undefined ? { rowsParallel: true } : {}),
          ...(commDtype ? { commDtype } : {}),
          ...(dtype ? { dtype } : {}),
          ...(keepBf16.length ? { keepBf16 } : {}),
          ...(tolerance !== undefined ? { tolerance } : {}),
          ...(opts.keepPlan ? { keepPlan: opts.keepPlan } : {}),
          ...(opts.debugInstrs ? { debugInstrs: true } : {}),
          ...(rank ? { launched: rank.launchedOpen(dir, backend), beforeStep: rank.firstStepHook() } : {}),
          log,
        });
        if (rank && !rank.isRoot) return r.ok ? EXIT_OK : EXIT_MISMATCH;
        let header = planCheckHeader(r);
        if (rank && rank.env.world > 1) header = header.replace('ranks in this process', `processes launched by ${rank.env.launcher}`);
        process.stdout.write(opts.json ? `${JSON.stringify(r)}\n` : `${formatCheck(r).replace('\n', `\n  ${header}\n`)}\n`);
        return r.ok ? EXIT_OK : EXIT_MISMATCH;
      };
      const launched = await withRank(opts.timeout, checkOnPlan);
      setCode(launched ? launched.value : await checkOnPlan());
      return;
    }
    const env = parseLaunchEnv(process.env);
    if (env && env.world > 1) {
      throw new IrError('E_INPUT', `check as one rank of a launched world of ${env.world} (${env.describe}) runs a compiled plan: add --backend cpu or --backend cuda, and mesh flags whose product is ${env.world}`);
    }
    const mesh = parallel.mesh;
    const rows = parallel.rowsParallel;
    const execute = mesh ? simulatedExecutor(mesh, { ...(rows !== undefined ? { rowsParallel: true } : {}), ...(commDtype ? { commDtype } : {}) }) : undefined;
    // --comm-dtype fp8: e4m3 transfers, checked at the fp8 bound unless a tolerance is given.
    const tol = tolerance ?? (commDtype ? FP8_COMM_TOLERANCE : undefined);
    const r0 = checkModelDir(path.resolve(dir), { ...(tol !== undefined ? { tolerance: tol } : {}), ...(execute ? { execute } : {}) });
    // Say what ran: the interpreter on one process, or the mesh's ranks simulated.
    const r = { ...r0, mesh: mesh ? { ulysses: mesh.ulysses, ring: mesh.ring, cfg: mesh.cfg, world: worldSize(mesh) } : null, rowsParallel: rows ?? null };
    const ran = mesh ? `  on ${describeParallel(parallel)}: ranks simulated by the SPMD interpreter` : '  on the reference interpreter (one process)';
    process.stdout.write(opts.json ? `${JSON.stringify(r)}\n` : `${formatCheck(r).replace('\n', `\n${ran}\n`)}\n`);
    setCode(r.ok ? EXIT_OK : EXIT_MISMATCH);
  });
}

interface CheckFlags {
  json?: boolean;
  tolerance?: string;
  backend?: string;
  dtype?: string;
  keepBf16: string[];
  commDtype?: string;
  keepPlan?: string;
  debugInstrs?: boolean;
  timeout?: string;
  ulysses?: string;
  ring?: string;
  cfg?: string;
  rowsParallel?: string;
}

function parseTolerance(s: string): number {
  const t = Number(s);
  if (!Number.isFinite(t) || t < 0) throw new IrError('E_INPUT', `--tolerance must be a non-negative number (a relative L2 error), got '${s}'`);
  return t;
}
