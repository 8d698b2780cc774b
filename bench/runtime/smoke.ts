/**
 * GPU smoke test of the CUDA runtime (run on the device machine; see bench/runtime/README.md):
 * writes the hand-built smoke plan (smoke-plan.ts) for f32 and bf16, runs it eagerly and as a
 * captured CUDA graph with conditional nodes, checks every step against the host reference, checks
 * error and refusal messages, and times graph vs eager steps. Exits non-zero on any failure.
 *   node .gpu-work/runtime/smoke.cjs [workdir]
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tensor, writeTensorFile } from '@paradit/ir';
import { loadCudaRuntime } from '../../packages/runtime/src/index';
import { M, K, N, NZ, SmokeDType, relL2, seeded, smokeReference, smokeWeights, writeSmokePlan } from './smoke-plan';

const rt = loadCudaRuntime();
const work = process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-smoke-'));
const results: { check: string; ok: boolean; detail: string }[] = [];
function record(check: string, ok: boolean, detail: string): void {
  results.push({ check, ok, detail });
  console.log(`${ok ? 'PASS' : 'FAIL'} ${check}: ${detail}`);
}
function attempt(check: string, f: () => string): void {
  try {
    record(check, true, f());
  } catch (e) {
    record(check, false, (e as Error).stack ?? String(e));
  }
}

const TOL: Record<SmokeDType, number> = { f32: 1e-5, bf16: 2e-2 };
/** flag per step; 'reset' calls resetState() before that step. */
const SCHEDULE: (boolean | 'reset')[] = [true, true, false, true, 'reset', true, false];

async function runSchedule(dtype: SmokeDType, backend: InstanceType<typeof rt.CudaBackend>, label: string): Promise<string> {
  const w = smokeWeights(dtype);
  let st: Float32Array = new Float32Array(M * N);
  const errs: string[] = [];
  let step = 0;
  for (const s of SCHEDULE) {
    if (s === 'reset') {
      backend.resetState();
      st = new Float32Array(M * N);
      continue;
    }
    const xv = seeded(M * K, 100 + step, 1, dtype);
    const inputs = new Map([
      ['x', new Tensor(dtype, [M, K], xv)],
      ['flag', new Tensor('bool', [1], Float64Array.of(s ? 1 : 0))],
    ]);
    const got = await backend.step(inputs);
    const ref = smokeReference(dtype, w, xv, s, st);
    st = ref.st;
    const eo = relL2(got.get('out')!.data, ref.out);
    const ez = relL2(got.get('z')!.data, ref.z);
    const bad = !(eo <= TOL[dtype]) || !(ez <= TOL[dtype]);
    if (bad) throw new Error(`${label} step ${step} (flag ${s}): relL2 out ${eo.toExponential(2)}, z ${ez.toExponential(2)} > ${TOL[dtype]}`);
    if (backend.report.graph !== 'captured') {
      const side = backend.branchTaken.get('2');
      if (side !== (s ? 'then' : 'else')) throw new Error(`${label} step ${step}: eager branch took '${side}', flag was ${s}`);
    }
    errs.push(`${eo.toExponential(1)}/${ez.toExponential(1)}`);
    step++;
  }
  return `${SCHEDULE.length - 1} steps, relL2 out/z per step ${errs.join(' ')} (tol ${TOL[dtype]})`;
}

/** test_data_set_0: inputs (x, flag = 1) and the reference outputs of a first step (state zero). */
function writeSmokeTestData(dir: string, dtype: SmokeDType): void {
  const set = path.join(dir, 'test_data_set_0');
  fs.mkdirSync(set, { recursive: true });
  const x = seeded(M * K, 100, 1, dtype);
  const ref = smokeReference(dtype, smokeWeights(dtype), x, true, new Float32Array(M * N));
  writeTensorFile(path.join(set, 'input_0.pb'), new Tensor(dtype, [M, K], x), 'x');
  writeTensorFile(path.join(set, 'input_1.pb'), new Tensor('bool', [1], Float64Array.of(1)), 'flag');
  writeTensorFile(path.join(set, 'output_0.pb'), new Tensor(dtype, [M, N], ref.out), 'out');
  writeTensorFile(path.join(set, 'output_1.pb'), new Tensor(dtype, [2, M, NZ], ref.z), 'z');
}

function nvccCubin(source: string): Uint8Array | undefined {
  try {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-nvcc-'));
    fs.writeFileSync(path.join(dir, 'm.cu'), source);
    execFileSync('nvcc', ['-std=c++17', '-gencode', 'arch=compute_90a,code=sm_90a', '-cubin', '-o', path.join(dir, 'm.cubin'), path.join(dir, 'm.cu')], { stdio: 'pipe' });
    return new Uint8Array(fs.readFileSync(path.join(dir, 'm.cubin')));
  } catch {
    return undefined;
  }
}

function expectError(check: string, f: () => unknown, mustInclude: string[]): void {
  try {
    f();
    record(check, false, 'no error thrown');
  } catch (e) {
    const msg = (e as Error).message;
    const missing = mustInclude.filter((s) => !msg.includes(s));
    record(check, missing.length === 0, missing.length ? `message lacks ${missing.join(', ')}: ${msg}` : msg);
  }
}

async function main(): Promise<void> {
  const d = rt.cudaDriver();
  const ctx = new rt.DeviceContext(d, 0);
  const i = ctx.info;
  console.log(`device: ${i.name}, cc ${i.major}.${i.minor}, ${i.sms} SMs, driver ${i.driverVersion}, smem opt-in ${i.maxSmemOptin}`);
  console.log(`nvrtc ${rt.nvrtc().version()}, cublasLt ${rt.cublasLt().version()}, conditional nodes: ${rt.conditionalNodesSupported(d)}`);
  const perf: string[] = [];
  for (const dtype of ['f32', 'bf16'] as const) {
    const dir = path.join(work, `smoke-${dtype}`);
    writeSmokePlan(dir, dtype);
    writeSmokeTestData(dir, dtype); // for run-plan.cjs --data (bench/runtime/run-gpu.sh)
    for (const graphs of [false, true]) {
      const label = `${dtype} ${graphs ? 'graph' : 'eager'}`;
      let b: InstanceType<typeof rt.CudaBackend> | undefined;
      try {
        b = rt.CudaBackend.load(dir, { graphs, tuneMinFlops: graphs ? 0 : undefined, log: (l) => console.log(`  [${label}] ${l}`) });
        const be = b;
        console.log(`  [${label}] report ${JSON.stringify({ ...be.report, device: undefined })}`);
        await runSchedule(dtype, be, label).then((m) => record(`${label} numerics`, true, m), (e) => record(`${label} numerics`, false, String((e as Error).message)));
        const r = be.bench(200, 20);
        perf.push(`${label}: median ${(r.medianMs * 1000).toFixed(1)} us/step (min ${(r.minMs * 1000).toFixed(1)}, ${r.steps} steps, ${r.mode})`);
      } catch (e) {
        record(`${label} load`, false, (e as Error).stack ?? String(e));
      } finally {
        b?.dispose();
      }
    }
    const cubin = nvccCubin(fs.readFileSync(path.join(dir, 'kernels/module.cu'), 'utf8'));
    if (cubin) {
      const cdir = path.join(work, `smoke-${dtype}-cubin`);
      writeSmokePlan(cdir, dtype, { cubin });
      const b = rt.CudaBackend.load(cdir, {});
      try {
        await runSchedule(dtype, b, `${dtype} cubin graph`).then((m) => record(`${dtype} cubin (${b.report.kernels}) graph numerics`, b.report.kernels === 'cubin', m));
      } finally {
        b.dispose();
      }
    } else console.log('  (nvcc not found: cubin path not checked)');
  }
  // Weights larger than one upload chunk (64 MiB), sha256-verified, read back from the device.
  attempt('weights.bin streamed in chunks and verified', () => {
    const dir = path.join(work, 'big-weights');
    const bytes = 150 * 2 ** 20 + 4096;
    const plan = writeSmokePlan(dir, 'f32');
    const big = new Uint8Array(bytes);
    for (let i = 0; i < bytes; i += 4) new DataView(big.buffer).setUint32(i, (i * 2654435761) >>> 0, true);
    const id = plan.buffers.length;
    const bufs = [...plan.buffers, { id, name: 'big', dtype: 'u8' as const, shape: [bytes], space: 'weights' as const, offset: 0, bytes }];
    const json = { ...plan, program: [], buffers: bufs, inputs: [], outputs: [], state: [], spaces: { ...plan.spaces, weights: bytes },
      weights: { ...plan.weights, bytes, sha256: createHash('sha256').update(big).digest('hex') } };
    fs.writeFileSync(path.join(dir, 'weights.bin'), big);
    fs.writeFileSync(path.join(dir, 'plan.json'), JSON.stringify(json));
    const b = rt.CudaBackend.load(dir, { verifyWeights: true });
    try {
      const back = b.readBuffer(id);
      const same = Buffer.compare(Buffer.from(back), Buffer.from(big)) === 0;
      if (!same) throw new Error('device copy differs from weights.bin');
      return `${(bytes / 2 ** 20).toFixed(1)} MiB uploaded in ${b.report.weightsMs.toFixed(0)} ms (sha256 checked), read back identical`;
    } finally {
      b.dispose();
    }
  });
  // An empty else body: a flag-0 step must leave `out` as the previous step wrote it.
  await (async () => {
    const dir = path.join(work, 'empty-else');
    writeSmokePlan(dir, 'f32', { emptyElse: true });
    let b: InstanceType<typeof rt.CudaBackend> | undefined;
    try {
      b = rt.CudaBackend.load(dir, {});
      const x = seeded(M * K, 7, 1, 'f32');
      const step = (f: number) => b!.step(new Map([['x', new Tensor('f32', [M, K], x)], ['flag', new Tensor('bool', [1], Float64Array.of(f))]]));
      const first = await step(1);
      const second = await step(0);
      const ref = smokeReference('f32', smokeWeights('f32'), x, true, new Float32Array(M * N));
      const e1 = relL2(first.get('out')!.data, ref.out);
      const e2 = relL2(second.get('out')!.data, first.get('out')!.data);
      record('empty else body (graph)', b.report.graph === 'captured' && e1 < 1e-5 && e2 === 0, `graph ${b.report.graph}, then-step relL2 ${e1.toExponential(1)}, else-step out unchanged: ${e2 === 0}`);
    } catch (e) {
      record('empty else body (graph)', false, (e as Error).stack ?? String(e));
    } finally {
      b?.dispose();
    }
  })();
  // Error and refusal messages.
  const bad = path.join(work, 'bad-kernel');
  writeSmokePlan(bad, 'f32', { wrongKernelName: true });
  expectError('missing kernel names call, status, kernel and ONNX nodes', () => rt.CudaBackend.load(bad), ['cuModuleGetFunction', 'CUDA_ERROR_NOT_FOUND', "kernel 'smoke_affine_missing'", '/smoke/Mul']);
  const arch = path.join(work, 'bad-arch');
  writeSmokePlan(arch, 'f32', { arch: 'sm_100a' });
  expectError('plan for sm_100a refused', () => rt.CudaBackend.load(arch), ['sm_100a', 'recompile']);
  const cpu = path.join(work, 'cpu-plan');
  writeSmokePlan(cpu, 'f32', { backend: 'cpu' });
  expectError('cpu plan refused', () => rt.CudaBackend.load(cpu), ['cpu backend', '--target cuda']);
  ctx.release();

  console.log('\n== smoke step times (tiny plan: launch/replay overhead) ==');
  for (const p of perf) console.log(p);
  const failed = results.filter((r) => !r.ok);
  console.log(`\n== smoke: ${results.length - failed.length}/${results.length} checks passed ==`);
  for (const f of failed) console.log(`FAILED ${f.check}`);
  process.exitCode = failed.length ? 1 : 0;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
