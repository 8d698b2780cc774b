/**
 * GPU helper of bench/flux/run.sh (bundled by bench/flux/build.mjs into .gpu-work/flux/bench-step.cjs).
 *
 *   bench-step.cjs inputs PLAN OUTDIR [--seed S]
 *       Writes OUTDIR/input_K.pb for the plan's model inputs (fbcache controls excluded), seeded
 *       uniform [0, 1) data (never zeros: zeros can time faster than real data), so that
 *       `paradit run PLAN --inputs OUTDIR --bench N --backend cuda` can time a model without test data.
 *
 *   bench-step.cjs fbcache PLAN INPUTDIR [--bench N]
 *       Times a First Block Cache plan's two branches, each as N replays of the captured step graph
 *       (CUDA events, median, after 5 warm-up replays):
 *       1. computed: a step with must_compute = 1 (the gate forced to run every block); checks that
 *          fbcache.cached came back false; then N replays with the same io (all computed).
 *       2. cached: a step with must_compute = 0 and the SAME inputs. r_ref holds the first block's
 *          residual of the computed step on these inputs, so diff = 0 < threshold: the step must
 *          report cached = true and diff = 0 (checked). Every replay after it sees the same inputs
 *          and the same r_ref, so it takes the cached branch again (the device-side conditional
 *          node decides; nothing is forced on the host). A final step re-checks cached = true.
 *       Prints one JSON line.
 *
 *   bench-step.cjs profile PLAN INPUTDIR [--steps N] [--top K] [--json FILE]
 *       Per-instruction device time: the median of N graph replays of the step (as `paradit run
 *       --bench`), then N eager steps with a CUDA event after every top-level instruction
 *       (CudaBackend.profileInstructions; enqueued without host syncs, so the GPU stays busy and
 *       the gaps are the kernels' own). Prints the top K instructions by median time with kind,
 *       shape, ONNX origin and achieved TFLOP/s (gemms, attention: 4·B·N·S²·H) or GB/s (other
 *       kernels: every distinct buffer argument counted once, read or written), then totals per
 *       kind and the eager sum against the graph replay.
 *
 *   bench-step.cjs nccl PLAN INPUTDIR [--bench N]
 *       The plan's graph step without and with the NCCL path (a world of one), alternating twice;
 *       prints both medians and the overhead in percent.
 *
 *   bench-step.cjs compare PLAN_A PLAN_B INPUTDIR
 *       Runs one step of each plan on the same inputs and prints the relative L2 of every output of
 *       A against B (e.g. the bf16 flux plan, flash attention and bf16 GEMMs, against the fp32 plan
 *       of the same seeded weights, decomposed fp32 attention and fp32 GEMMs: an independent path).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tensor, mulberry32, writeTensorFile } from '@paradit/ir';
import { FBCACHE_NAMES, FBCACHE_PREFIX, compareTensors, loadCudaRuntime, openPlan, readTestDataSet } from '@paradit/runtime';
import type { Plan } from '@paradit/runtime';

function flag(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

function modelInputs(plan: Plan): { name: string; dtype: string; shape: number[] }[] {
  const bufs = new Map(plan.buffers.map((b) => [b.id, b]));
  return plan.inputs.filter((x) => !x.name.startsWith(FBCACHE_PREFIX)).map((x) => ({ name: x.name, dtype: bufs.get(x.buf)!.dtype, shape: bufs.get(x.buf)!.shape }));
}

function writeInputs(planDir: string, outDir: string, seed: number): void {
  const plan = JSON.parse(fs.readFileSync(path.join(planDir, 'plan.json'), 'utf8')) as Plan;
  const rand = mulberry32(seed ^ 0x9e3779b9);
  fs.mkdirSync(outDir, { recursive: true });
  modelInputs(plan).forEach((x, k) => {
    const n = x.shape.reduce((p, d) => p * d, 1);
    const isFloat = x.dtype === 'f32' || x.dtype === 'bf16' || x.dtype === 'f16';
    const data = Array.from({ length: n }, () => (isFloat ? rand() : 0));
    writeTensorFile(path.join(outDir, `input_${k}.pb`), Tensor.from(x.dtype as 'f32', x.shape, data), x.name);
  });
  console.log(`wrote ${modelInputs(plan).length} inputs to ${outDir}`);
}

async function benchFbcache(planDir: string, inputDir: string, n: number): Promise<void> {
  const rt = loadCudaRuntime();
  const b = rt.CudaBackend.load(planDir, { graphs: true });
  try {
    const plan = b.plan;
    const threshold = plan.stats['fbcacheThreshold'];
    if (threshold === undefined || !(threshold > 0)) throw new Error(`${planDir} has no First Block Cache gate with a positive threshold; compile it with --fbcache 0.08`);
    const set = readTestDataSet(inputDir);
    const names = modelInputs(plan);
    if (set.inputs.length !== names.length) throw new Error(`${inputDir} has ${set.inputs.length} inputs, the plan takes ${names.length}`);
    const inputs = (mustCompute: boolean): Map<string, Tensor> =>
      new Map<string, Tensor>([
        ...names.map((x, k) => [x.name, set.inputs[k]!] as [string, Tensor]),
        [FBCACHE_NAMES.threshold, Tensor.scalar('f32', threshold)],
        [FBCACHE_NAMES.mustCompute, Tensor.scalar('bool', mustCompute ? 1 : 0)],
        [FBCACHE_NAMES.maxCached, Tensor.scalar('f32', Infinity)],
      ]);
    const decision = async (mustCompute: boolean): Promise<{ cached: boolean; diff: number }> => {
      const outs = await b.step(inputs(mustCompute));
      return { cached: outs.get(FBCACHE_NAMES.cached)!.data[0] !== 0, diff: outs.get(FBCACHE_NAMES.diff)!.data[0]! };
    };
    b.resetState();
    const first = await decision(true);
    if (first.cached) throw new Error('a step with must_compute = 1 reported cached = true');
    const computed = b.bench(n, 5);
    const second = await decision(false);
    if (!second.cached || second.diff !== 0) throw new Error(`a step with the computed step's inputs should be cached with diff 0, got cached = ${second.cached}, diff = ${second.diff}`);
    const cached = b.bench(n, 5);
    const after = await decision(false);
    if (!after.cached) throw new Error('the step after the cached replays was not cached');
    const r = b.report;
    console.log(
      JSON.stringify({
        device: r.device.name,
        graph: r.graph,
        graphNodes: r.graphNodes,
        threshold,
        totalBlocks: plan.stats['fbcacheTotalBlocks'],
        skippedBlocks: plan.stats['fbcacheSkippedBlocks'],
        checks: { computedStep: first, cachedStep: second, afterReplays: after },
        computedMs: computed.medianMs,
        cachedMs: cached.medianMs,
        computed,
        cached,
      }),
    );
  } finally {
    b.dispose();
  }
}

/** One step of a plan on the GPU; a sharded plan runs its ranks in this process (InProcessCudaRanks). */
async function stepOnce(planDir: string, inputDir: string): Promise<{ device: string; outs: Map<string, Tensor>; seconds: number }> {
  const opened = await openPlan(planDir, { backend: 'cuda', verifyWeights: false });
  try {
    const set = readTestDataSet(inputDir);
    const names = modelInputs(opened.loaded.plan);
    const inputs = new Map<string, Tensor>(names.map((x, k) => [x.name, set.inputs[k]!]));
    const t0 = performance.now();
    const outs = await opened.executor.step(inputs);
    const report = (opened.executor as { report?: { device?: { name?: string } } }).report;
    return { device: report?.device?.name ?? 'gpu', outs, seconds: (performance.now() - t0) / 1000 };
  } finally {
    opened.dispose();
  }
}

/**
 * The NCCL path's cost on a single-GPU plan: the same plan loaded without and with NCCL (a world
 * of one, every collective path live, the step captured in one graph), alternating twice, each a
 * median of N graph replays on the same seeded inputs.
 */
async function ncclOverhead(planDir: string, inputDir: string, steps: number): Promise<void> {
  const rt = loadCudaRuntime();
  const set = readTestDataSet(inputDir);
  const rows: { nccl: boolean; medianMs: number; minMs: number; graphNodes?: number }[] = [];
  let device = '';
  for (const nccl of [false, true, false, true]) {
    const b = rt.CudaBackend.load(planDir, { nccl, verifyWeights: false });
    try {
      device = b.report.device.name;
      const names = modelInputs(b.plan);
      await b.step(new Map<string, Tensor>(names.map((x, k) => [x.name, set.inputs[k]!])));
      const r = b.bench(steps, 5);
      rows.push({ nccl, medianMs: r.medianMs, minMs: r.minMs, ...(b.report.graphNodes !== undefined ? { graphNodes: b.report.graphNodes } : {}) });
    } finally {
      b.dispose();
    }
  }
  const med = (on: boolean): number => Math.min(...rows.filter((r) => r.nccl === on).map((r) => r.medianMs));
  console.log(JSON.stringify({ device, plan: planDir, steps, rows, bestPlainMs: med(false), bestNcclMs: med(true), overheadPct: (100 * (med(true) - med(false))) / med(false) }));
}

async function comparePlans(a: string, b: string, inputDir: string): Promise<void> {
  const ra = await stepOnce(a, inputDir);
  const rb = await stepOnce(b, inputDir);
  console.error(`steps: ${a} ${ra.seconds.toFixed(2)} s, ${b} ${rb.seconds.toFixed(2)} s`);
  const outputs = [...ra.outs].map(([name, t]) => {
    const c = compareTensors(t, rb.outs.get(name)!);
    let sq = 0;
    for (const x of rb.outs.get(name)!.data) sq += x * x;
    return { name, relL2: c.relL2, maxAbs: c.maxAbs, nanMismatch: c.nanMismatch, refRms: Math.sqrt(sq / t.size) };
  });
  console.log(JSON.stringify({ device: ra.device, a, b, outputs }));
}

interface ProfileRow {
  index: number;
  kind: string;
  what: string;
  origin: string;
  ms: number;
  tflops?: number;
  gbps?: number;
}

function describe(plan: Plan, index: number): Omit<ProfileRow, 'ms' | 'tflops' | 'gbps'> & { flops: number; bytes: number } {
  const bufs = new Map(plan.buffers.map((b) => [b.id, b]));
  const ins = plan.program[index]!;
  const origin = ins.origin.slice(0, 3).join(',') + (ins.origin.length > 3 ? `,+${ins.origin.length - 3}` : '');
  if (ins.op === 'gemm') {
    const bytesOf = (buf: number, rows: number, cols: number): number => (rows * cols * (bufs.get(buf)!.bytes / Math.max(1, bufs.get(buf)!.shape.reduce((p, d) => p * d, 1))));
    const bytes = ins.batch * (bytesOf(ins.a.buf, ins.a.rows, ins.a.cols) + bytesOf(ins.b.buf, ins.b.rows, ins.b.cols) + bytesOf(ins.out.buf, ins.out.rows, ins.out.cols));
    const ep = ins.epilogue !== 'none' ? `+${ins.epilogue}` : '';
    const lay = `${ins.transA ? 't' : 'n'}${ins.transB ? 't' : 'n'}`;
    return { index, kind: 'gemm', what: `${ins.m}x${ins.k} @ ${ins.k}x${ins.n}${ins.batch > 1 ? ` b${ins.batch}` : ''} ${lay}${ep}${ins.out.ld !== ins.out.cols ? ` ld${ins.out.ld}` : ''}`, origin, flops: 2 * ins.m * ins.n * ins.k * ins.batch, bytes };
  }
  if (ins.op === 'kernel') {
    const ids = [...new Set(ins.args.flatMap((a) => ('buf' in a ? [a.buf] : [])))];
    const bytes = ids.reduce((p, id) => p + bufs.get(id)!.bytes, 0);
    let flops = 0;
    const kind = ins.kernel.startsWith('paradit_attn') ? 'attention' : 'kernel';
    if (kind === 'attention' && ids.length >= 2) {
      const q = bufs.get(ids[0]!)!.shape;
      const numel = (sh: number[]): number => sh.reduce((p, d) => p * d, 1);
      flops = 4 * numel(q) * q[q.length - 2]!; // self-attention over [B, N, S, H] q: 4·B·N·S²·H
    }
    const shapes = ids.slice(-1).map((id) => `-> ${bufs.get(id)!.name}[${bufs.get(id)!.shape.join(',')}]`).join(' ');
    return { index, kind, what: `${ins.kernel} ${shapes}`, origin, flops, bytes };
  }
  if (ins.op === 'copy') return { index, kind: 'copy', what: `${bufs.get(ins.src)!.name} -> ${bufs.get(ins.dst)!.name}`, origin, flops: 0, bytes: 2 * bufs.get(ins.src)!.bytes };
  if (ins.op === 'collective') return { index, kind: ins.collective, what: `${ins.collective} over ${ins.meshAxis} (${bufs.get(ins.send)!.bytes} bytes)`, origin, flops: 0, bytes: bufs.get(ins.send)!.bytes };
  if (ins.op === 'shard_slice') return { index, kind: 'shard_slice', what: `${bufs.get(ins.src)!.name} -> ${bufs.get(ins.dst)!.name}`, origin, flops: 0, bytes: 2 * bufs.get(ins.dst)!.bytes };
  return { index, kind: 'branch', what: `branch (${ins.then.length} then / ${ins.else.length} else)`, origin, flops: 0, bytes: 0 };
}

async function profile(planDir: string, inputDir: string, steps: number, top: number, jsonFile: string): Promise<void> {
  const b = loadCudaRuntime().CudaBackend.load(planDir, { graphs: true });
  try {
    const set = readTestDataSet(inputDir);
    const names = modelInputs(b.plan);
    await b.step(new Map<string, Tensor>(names.map((x, k) => [x.name, set.inputs[k]!])));
    const graph = b.bench(steps, 5);
    const prof = b.profileInstructions(steps, 2);
    const graph2 = b.bench(steps, 5);
    const rows: ProfileRow[] = prof.instrMs.map((ms, i) => {
      const d = describe(b.plan, i);
      const r: ProfileRow = { index: d.index, kind: d.kind, what: d.what, origin: d.origin, ms };
      if (d.flops > 0) r.tflops = d.flops / (ms * 1e-3) / 1e12;
      else if (d.bytes > 0) r.gbps = d.bytes / (ms * 1e-3) / 1e9;
      return r;
    });
    const sum = rows.reduce((p, r) => p + r.ms, 0);
    const byKind = new Map<string, { n: number; ms: number }>();
    for (const r of rows) {
      const k = byKind.get(r.kind) ?? { n: 0, ms: 0 };
      byKind.set(r.kind, { n: k.n + 1, ms: k.ms + r.ms });
    }
    const device = b.report.device.name;
    if (jsonFile) fs.writeFileSync(jsonFile, JSON.stringify({ device, graphMs: graph.medianMs, graphAfterMs: graph2.medianMs, eagerStepMs: prof.stepMs, sumMs: sum, rows }, null, 1));
    console.log(`profile of ${planDir} on ${device}: ${rows.length} top-level instructions, medians of ${steps} steps`);
    console.log(`  graph replay ${graph.medianMs.toFixed(3)} ms (again after profiling: ${graph2.medianMs.toFixed(3)}); eager step with events ${prof.stepMs.toFixed(3)} ms; sum of instructions ${sum.toFixed(3)} ms`);
    for (const [k, v] of [...byKind].sort((x, y) => y[1].ms - x[1].ms)) console.log(`  ${k.padEnd(9)} ${String(v.n).padStart(3)} instrs ${v.ms.toFixed(3).padStart(8)} ms (${((100 * v.ms) / sum).toFixed(1)}%)`);
    console.log('  #    kind       ms      rate         what  |  origin');
    for (const r of [...rows].sort((x, y) => y.ms - x.ms).slice(0, top)) {
      const rate = r.tflops !== undefined ? `${r.tflops.toFixed(0)} TF/s` : r.gbps !== undefined ? `${r.gbps.toFixed(0)} GB/s` : '';
      console.log(`  ${String(r.index).padStart(3)} ${r.kind.padEnd(9)} ${r.ms.toFixed(3).padStart(7)} ${rate.padStart(10)}  ${r.what}  |  ${r.origin}`);
    }
  } finally {
    b.dispose();
  }
}

async function main(): Promise<void> {
  const [cmd, planDir, dir] = process.argv.slice(2);
  if (cmd === 'inputs' && planDir && dir) writeInputs(planDir, dir, Number(flag('--seed', '1')));
  else if (cmd === 'nccl' && planDir && dir) await ncclOverhead(planDir, dir, Number(flag('--bench', '20')));
  else if (cmd === 'fbcache' && planDir && dir) await benchFbcache(planDir, dir, Number(flag('--bench', '20')));
  else if (cmd === 'profile' && planDir && dir) await profile(planDir, dir, Number(flag('--steps', '10')), Number(flag('--top', '40')), flag('--json', ''));
  else if (cmd === 'compare' && planDir && dir && process.argv[5]) await comparePlans(planDir, dir, process.argv[5]);
  else throw new Error('usage: bench-step.cjs inputs PLAN OUTDIR [--seed S] | nccl PLAN INPUTDIR [--bench N] | fbcache PLAN INPUTDIR [--bench N] | profile PLAN INPUTDIR [--steps N] [--top K] [--json FILE] | compare PLAN_A PLAN_B INPUTDIR');
}

main().catch((e) => {
  console.error(`bench-step: ${(e as Error).message}`);
  process.exit(1);
});
