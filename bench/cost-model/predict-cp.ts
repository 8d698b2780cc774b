/**
 * Cost-model predictions of context parallelism for FLUX.1-dev on NVLink H100s, before any
 * multi-GPU run: compiles flux-dev-2x4 (the full-width FLUX.1-dev graph with 2 double + 4 single
 * blocks) for each mesh with the real compiler (lowering, layout choice, overlap schedule) and
 * prints what the schedule's timeline predicts (codegen-cuda/src/lower/cost-model.ts rates): the
 * step, the collectives' bytes and time, how much of it compute hides, and the scaling
 * efficiency T1 / (W x TW). Full FLUX.1-dev (19 double + 38 single blocks) is extrapolated from
 * the same timeline: each instruction is attributed to its block (block discovery on the fused
 * graph), a block costing its compute plus its collectives' unhidden time, and the full model is
 * the 2x4 step with its blocks replaced by 19 copies of the last double block and 38 of the last
 * single block (the blocks are identical modulo weights).
 *
 *   node bench/cost-model/run.mjs [path/to/flux-dev-2x4]
 */
import path from 'node:path';
import { loadModel, makeMesh, worldSize } from '@paradit/ir';
import type { Mesh, Node } from '@paradit/ir';
import { compileModule } from '@paradit/compiler';
import { createPassContext, defaultPipeline, discoverBlocks, runPipeline } from '@paradit/passes';
import { instrOrigin } from '../../packages/codegen-cuda/src/lower/lower-graph';
import { linkBytes } from '../../packages/codegen-cuda/src/lower/cost-model';

const FULL = { double: 19, single: 38 };

interface Prediction {
  readonly mesh: string;
  readonly world: number;
  readonly stepMs: number;
  readonly commMiB: number;
  readonly commMs: number;
  readonly hiddenMs: number;
  readonly blockMs: readonly number[];
  readonly kinds: readonly string[];
}

function predict(file: string, mesh: Mesh, blockOf: ReadonlyMap<string, number>, kinds: readonly string[]): Prediction {
  const c = compileModule(loadModel(file, { randomWeights: { seed: 1 } }), { dtype: 'bf16', mesh });
  const r = c.schedule;
  // A block's cost: its compute on stream 0 plus the part of its collectives compute did not hide
  // (the scheduler interleaves blocks, so wall-clock spans would overlap).
  const cost = new Map<number, number>();
  const blockOfInstr = (i: (typeof r.spans)[number]['instr']): number | undefined => instrOrigin(i).map((o) => blockOf.get(o.split('/')[0]!)).find((b) => b !== undefined);
  for (const s of r.spans) {
    const b = blockOfInstr(s.instr);
    if (b !== undefined && s.stream === 0) cost.set(b, (cost.get(b) ?? 0) + s.end - s.start);
  }
  for (const e of r.comm) {
    const b = blockOfInstr(e.instr);
    if (b !== undefined) cost.set(b, (cost.get(b) ?? 0) + e.seconds - e.hidden);
  }
  const blockMs = kinds.map((_, b) => (cost.get(b) ?? 0) * 1e3);
  return {
    mesh: `U${mesh.ulysses} R${mesh.ring} C${mesh.cfg}`,
    world: worldSize(mesh),
    stepMs: r.makespan * 1e3,
    commMiB: r.comm.reduce((a, e) => a + linkBytes(e.instr), 0) / 2 ** 20,
    commMs: r.comm.reduce((a, e) => a + e.seconds, 0) * 1e3,
    hiddenMs: r.comm.reduce((a, e) => a + e.hidden, 0) * 1e3,
    blockMs,
    kinds,
  };
}

/** The full model: the 2x4 step with its blocks swapped for FULL's counts of the last block of each kind. */
function extrapolate(p: Prediction): { stepMs: number; commMs: number; hiddenMs: number; commMiB: number } {
  const sum = p.blockMs.reduce((a, b) => a + b, 0);
  const last = (k: string): number => p.blockMs[p.kinds.lastIndexOf(k)] ?? 0;
  const nDouble = p.kinds.filter((k) => k === 'double').length;
  const nSingle = p.kinds.filter((k) => k === 'single').length;
  const scale = (FULL.double + FULL.single) / (nDouble + nSingle);
  return {
    stepMs: p.stepMs - sum + FULL.double * last('double') + FULL.single * last('single'),
    commMs: p.commMs * scale,
    hiddenMs: p.hiddenMs * scale,
    commMiB: p.commMiB * scale,
  };
}

function main(): void {
  const dir = process.argv[2] ?? path.resolve(__dirname, '../../../shared/fixtures/flux-dev-2x4');
  const file = path.join(dir, 'model.onnx');
  const fused = runPipeline(loadModel(file, { randomWeights: { seed: 1 } }), defaultPipeline(), createPassContext());
  const report = discoverBlocks(fused.graph);
  const blockOf = new Map<string, number>();
  report.blocks.forEach((b, i) => (b.nodes as readonly Node[]).forEach((n) => blockOf.set(n.name, i)));
  const kinds = report.blocks.map((b, i) => (i < (report.groups[0]?.count ?? 0) ? 'double' : 'single'));
  const meshes = [makeMesh({}), makeMesh({ ulysses: 2 }), makeMesh({ ring: 2 }), makeMesh({ ulysses: 2, ring: 2 }), makeMesh({ ulysses: 4 }), makeMesh({ ring: 4 }), makeMesh({ ulysses: 8 }), makeMesh({ ulysses: 2, ring: 4 }), makeMesh({ ulysses: 4, ring: 2 })];
  const rows = meshes.map((m) => predict(file, m, blockOf, kinds));
  const one = rows[0]!;
  const oneFull = extrapolate(one);
  const fmt = (x: number, d = 2): string => x.toFixed(d);
  console.log('cost-model prediction (H100 SXM + NVLink, rates in packages/codegen-cuda/src/lower/cost-model.ts)');
  console.log('| model | mesh | W | step ms | comm MiB/rank | comm ms | hidden ms (%) | efficiency T1/(W*TW) |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    const eff = one.stepMs / (r.world * r.stepMs);
    console.log(`| flux-dev-2x4 | ${r.mesh} | ${r.world} | ${fmt(r.stepMs)} | ${fmt(r.commMiB, 0)} | ${fmt(r.commMs)} | ${fmt(r.hiddenMs)} (${r.commMs ? fmt((100 * r.hiddenMs) / r.commMs, 0) : '-'}) | ${fmt(eff)} |`);
  }
  for (const r of rows) {
    const f = extrapolate(r);
    const eff = oneFull.stepMs / (r.world * f.stepMs);
    console.log(`| FLUX.1-dev (extrapolated) | ${r.mesh} | ${r.world} | ${fmt(f.stepMs, 1)} | ${fmt(f.commMiB, 0)} | ${fmt(f.commMs)} | ${fmt(f.hiddenMs)} (${f.commMs ? fmt((100 * f.hiddenMs) / f.commMs, 0) : '-'}) | ${fmt(eff)} |`);
  }
  console.log(`blocks of flux-dev-2x4 on one GPU (ms): ${one.blockMs.map((b, i) => `${kinds[i]} ${fmt(b)}`).join(', ')}`);
}

main();
