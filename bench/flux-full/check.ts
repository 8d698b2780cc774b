/**
 * GPU helper of bench/flux-full/gen-check.sh and bench/flux/full-run.sh (bundled by bench/flux-full/build.mjs into
 * .gpu-work/flux-full/check.cjs; koffi external, found through .gpu/setup.sh's NODE_PATH).
 *
 *   check.cjs make-tiny DIR
 *       (here, no GPU) writes DIR/model.onnx: the tiny DiT of tests/models/tiny-dit.ts with its
 *       weights as external data that does not exist, so `paradit compile --random-weights` gives
 *       a plan whose weights are all generated (plan weights.generated).
 *
 *   check.cjs fill PLAN [--sample N]
 *       Loads the plan's weights on the GPU (DevicePlan: weights.bin, then the fill kernel for
 *       every generated weight) and compares device bytes with the JS generator
 *       (generatedWeightBytes = randomTensor + the plan encoding): the whole weights space against
 *       the CPU backend's (readWeightsSpace) when it is under 1 GiB, else N generated tensors (the
 *       first, the last, the largest and seeded picks). Prints one JSON line: tensors and bytes
 *       compared, mismatching tensors (must be 0), the fill time.
 *
 *   check.cjs compare PLAN [--seed S]
 *       One step of PLAN on --backend cuda and on --backend cpu with the same seeded inputs:
 *       relative L2 per output (the CPU backend regenerates the weights in JS, the GPU fills them
 *       with the kernel; a tiny plan only: the CPU backend interprets every instruction).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tensor, mulberry32, saveModel } from '@paradit/ir';
import { compareTensors, generatedWeightBytes, loadCudaRuntime, loadPlan, openPlan, readWeightsSpace } from '@paradit/runtime';
import type { Plan } from '@paradit/runtime';
import { TINY_DIT, buildTinyDit } from '../../tests/models/tiny-dit';

function flag(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

function makeTiny(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  saveModel(buildTinyDit({ ...TINY_DIT, blocks: 2 }), path.join(dir, 'model.onnx'), { externalData: true, externalMinBytes: 64 });
  fs.rmSync(path.join(dir, 'model.onnx.data'));
  console.log(`wrote ${dir}/model.onnx (weights: external data that does not exist; compile with --random-weights)`);
}

function fillCheck(planDir: string, sample: number): void {
  const rt = loadCudaRuntime();
  const files = rt.readPlanFiles(planDir);
  const plan = files.plan;
  const t0 = performance.now();
  const dp = new rt.DevicePlan(files, { log: (l) => console.error(l) });
  const loadMs = performance.now() - t0;
  try {
    const byId = new Map(plan.buffers.map((b) => [b.id, b]));
    const gen = plan.weights.generated;
    let tensors = 0;
    let bytes = 0;
    const bad: string[] = [];
    if (plan.spaces.weights < 2 ** 30) {
      const want = readWeightsSpace(loadPlan(planDir));
      const got = new Uint8Array(plan.spaces.weights);
      dp.d.dtoh(got, dp.weights);
      for (const b of plan.buffers.filter((x) => x.space === 'weights')) {
        tensors++;
        bytes += b.bytes;
        const a = got.subarray(b.offset, b.offset + b.bytes);
        const w = want.subarray(b.offset, b.offset + b.bytes);
        if (!Buffer.from(a).equals(Buffer.from(w))) bad.push(b.name);
      }
      if (!Buffer.from(got).equals(Buffer.from(want))) bad.push('(the weights space outside the buffers: padding)');
    } else {
      const rand = mulberry32(17);
      const pick = new Set<number>([0, gen.length - 1]);
      let largest = 0;
      gen.forEach((g, i) => {
        if (g.count > gen[largest]!.count) largest = i;
      });
      pick.add(largest);
      while (pick.size < Math.min(sample, gen.length)) pick.add(Math.floor(rand() * gen.length));
      for (const i of pick) {
        const g = gen[i]!;
        const b = byId.get(g.buf)!;
        const got = new Uint8Array(b.bytes);
        dp.d.dtoh(got, dp.weights + BigInt(b.offset));
        tensors++;
        bytes += b.bytes;
        if (!Buffer.from(got).equals(Buffer.from(generatedWeightBytes(g)))) bad.push(`${b.name} (${g.from}->${g.dtype}, ${g.count} elements)`);
      }
    }
    console.log(
      JSON.stringify({
        device: dp.info.name, plan: planDir, generated: gen.length, generatedBytes: plan.spaces.weights - plan.weights.bytes, fileBytes: plan.weights.bytes,
        fillMs: Math.round(dp.generatedMs), loadMs: Math.round(loadMs), comparedTensors: tensors, comparedBytes: bytes, mismatches: bad.length, mismatching: bad.slice(0, 10),
      }),
    );
    if (bad.length) process.exitCode = 1;
  } finally {
    dp.dispose();
  }
}

function seededInputs(plan: Plan, seed: number): Map<string, Tensor> {
  const bufs = new Map(plan.buffers.map((b) => [b.id, b]));
  const rand = mulberry32(seed);
  return new Map(
    plan.inputs.map((x) => {
      const b = bufs.get(x.buf)!;
      const n = b.shape.reduce((p, d) => p * d, 1);
      const isFloat = b.dtype === 'f32' || b.dtype === 'bf16' || b.dtype === 'f16';
      const data = Array.from({ length: n }, () => (isFloat ? rand() : 0));
      return [x.name, Tensor.from(b.dtype as 'f32', b.shape, data)];
    }),
  );
}

async function compareBackends(planDir: string, seed: number): Promise<void> {
  const cpu = await openPlan(planDir, { backend: 'cpu' });
  const cuda = await openPlan(planDir, { backend: 'cuda', verifyWeights: true });
  try {
    const inputs = seededInputs(cpu.loaded.plan, seed);
    const a = await cuda.executor.step(inputs);
    const b = await cpu.executor.step(inputs);
    const outputs = [...b].map(([name, ref]) => {
      const c = compareTensors(a.get(name)!, ref);
      return { name, relL2: c.relL2, maxAbs: c.maxAbs, nanMismatch: c.nanMismatch };
    });
    const device = (cuda.executor as { report?: { device?: { name?: string } } }).report?.device?.name ?? 'gpu';
    console.log(JSON.stringify({ device, plan: planDir, dtype: cpu.loaded.plan.target.dtype, generated: cpu.loaded.plan.weights.generated.length, outputs }));
  } finally {
    cuda.dispose();
    cpu.dispose();
  }
}

async function main(): Promise<void> {
  const [cmd, arg] = process.argv.slice(2);
  if (cmd === 'make-tiny' && arg) makeTiny(arg);
  else if (cmd === 'fill' && arg) fillCheck(arg, Number(flag('--sample', '8')));
  else if (cmd === 'compare' && arg) await compareBackends(arg, Number(flag('--seed', '3')));
  else {
    console.error('usage: check.cjs make-tiny DIR | fill PLAN [--sample N] | compare PLAN [--seed S]');
    process.exitCode = 2;
  }
}

main().catch((e: unknown) => {
  console.error((e as Error).stack ?? String(e));
  process.exitCode = 1;
});
