/** `paradit inspect MODEL [--json]`: what a model takes, returns and contains. */
import type { Command } from 'commander';
import { Graph, Module, Value, byteSize, loadModel, numel, isStaticShape, IrError } from '@paradit/ir';
import type { DType } from '@paradit/ir';
import fs from 'node:fs';
import { commFp8Inspection, compileForMesh, createPassContext, defaultPipeline, discoverBlocks, meshInspection, renderBlocksDot, runPipeline } from '@paradit/passes';
import { COMM_DTYPE_FLAG, commDtypeFromFlags, meshFromFlags, parallelFromFlags } from '../mesh-flags';
import { formatRowsInspection, rowsInspection } from './inspect-rows';
import { injectFault } from '../fault-injection';
import { compileDenoiseStep, parseKeepPattern, planFp8Linears, quantizeLinearsFp8Pass, summarizeFp8Plan } from '@paradit/passes';
import { fbcacheSignature } from '@paradit/runtime';
import { planSummary } from '@paradit/compiler';
import { parsePrecision } from '@paradit/codegen-cuda';
import type { PlanPrecision } from '@paradit/codegen-cuda';

interface ValueSummary {
  readonly name: string;
  readonly dtype: string;
  readonly shape: (number | string)[];
}

interface ModelSummary {
  readonly model: string;
  readonly irVersion: number;
  readonly opset: number;
  readonly producer: string;
  readonly inputs: ValueSummary[];
  readonly outputs: ValueSummary[];
  readonly nodeCount: number;
  readonly opCounts: Record<string, number>;
  readonly parameters: number;
  readonly parameterBytes: number;
  readonly randomWeights: boolean;
  /** 'present': read from the model; 'random': seeded stand-ins (--random-weights); 'absent': graph only. */
  readonly weights: 'present' | 'random' | 'absent';
}

function summarizeValue(v: Value): ValueSummary {
  return { name: v.name, dtype: v.dtype, shape: [...v.shape] };
}

/** Counts nodes and ops (subgraphs included) and parameters (constants, each counted once). */
function summarize(m: Module, source: string): ModelSummary {
  const opCounts: Record<string, number> = {};
  const consts = new Set<Value>();
  let nodeCount = 0;
  const walk = (g: Graph): void => {
    for (const n of g.nodes) {
      nodeCount++;
      opCounts[n.op] = (opCounts[n.op] ?? 0) + 1;
      for (const v of n.inputs) if (v?.constant) consts.add(v);
      for (const sg of n.subgraphs()) walk(sg);
    }
  };
  walk(m.graph);
  let parameters = 0;
  let parameterBytes = 0;
  for (const c of consts) {
    if (!isStaticShape(c.shape)) continue;
    const n = numel(c.shape);
    parameters += n;
    parameterBytes += n * byteSize(c.dtype);
  }
  const sorted = Object.fromEntries(Object.entries(opCounts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
  return {
    model: source,
    irVersion: m.meta.irVersion,
    opset: m.opset,
    producer: `${m.meta.producerName} ${m.meta.producerVersion}`.trim(),
    inputs: m.graph.inputs.map(summarizeValue),
    outputs: m.graph.outputs.map(summarizeValue),
    nodeCount,
    opCounts: sorted,
    parameters,
    parameterBytes,
    randomWeights: m.meta.randomWeights === true,
    weights: m.meta.absentWeights ? 'absent' : m.meta.randomWeights ? 'random' : 'present',
  };
}

export function fmtBytes(b: number): string {
  if (b >= 1 << 30) return `${(b / (1 << 30)).toFixed(2)} GiB`;
  if (b >= 1 << 20) return `${(b / (1 << 20)).toFixed(1)} MiB`;
  if (b >= 1 << 10) return `${(b / (1 << 10)).toFixed(1)} KiB`;
  return `${b} B`;
}

function formatSummary(s: ModelSummary): string {
  const lines: string[] = [];
  const v = (x: ValueSummary): string => `  ${x.name}: ${x.dtype}[${x.shape.join(',')}]`;
  lines.push(`model ${s.model} (IR ${s.irVersion}, opset ${s.opset}, from ${s.producer || 'unknown producer'})`);
  lines.push('inputs:', ...s.inputs.map(v), 'outputs:', ...s.outputs.map(v));
  lines.push(`nodes: ${s.nodeCount}`);
  lines.push(`parameters: ${s.parameters.toLocaleString('en-US')} (${fmtBytes(s.parameterBytes)})${s.randomWeights ? ' [random weights]' : ''}${s.weights === 'absent' ? ' [weights absent: graph only]' : ''}`);
  lines.push('ops:');
  const width = Math.max(0, ...Object.keys(s.opCounts).map((k) => k.length));
  for (const [op, n] of Object.entries(s.opCounts)) lines.push(`  ${op.padEnd(width)}  ${n}`);
  return lines.join('\n');
}

/** The dtype a plan of this precision stores activations in (fp8 plans: bf16 between the fp8 GEMMs). */
function activationDtype(p: PlanPrecision): DType {
  return p === 'fp8' ? 'bf16' : p;
}

export function inspectCommand(program: Command, _setCode: (c: number) => void): void {
  program
    .command('inspect')
    .description('show a model after the default passes: inputs, outputs, ops, attention sites, transformer blocks (and mesh collectives, the cache gate, plan memory)')
    .argument('<model>', 'a .onnx file, or a folder holding model.onnx')
    .option('--json', 'print one JSON object')
    .option('--random-weights [seed]', 'replace missing external weights with seeded random data (benchmarking)')
    .option('--raw', 'the imported graph, without passes')
    .option('--after <pass>', 'print the IR text after this pass of the default pipeline')
    .option('--dot <file>', 'write a Graphviz drawing of the block-level structure (prologue, blocks, streams, head) to FILE')
    .option('--ulysses <n>', 'Ulysses degree (adds collectives and world to --json)')
    .option('--ring <n>', 'ring degree')
    .option('--cfg <n>', 'CFG-parallel degree')
    .option('--rows-parallel <W>', 'rows-parallel degree of a VAE decoder: adds per-rank halo and all-reduce volumes (rowsParallel), collectives and world to --json')
    .option('--fbcache <threshold>', 'compile one denoising step with the First Block Cache gate (the threshold is a step input; T only turns the gate on); see it with --after insert-cache-gate')
    .option('--target <backend>', 'also lower for this target (cuda) and report the plan: peak activation memory, kernels, gemms')
    .option('--dtype <dtype>', 'with --target: storage dtype bf16, fp16, fp32 or fp8; fp8 also lists which linear layers are fp8 and why the others stay bf16 (--after quantize-linears-fp8 prints the rewrite)', 'bf16')
    .option('--keep-bf16 <pattern>', 'with --dtype fp8: layers (ONNX node or weight name; glob or /regex/) that stay bf16 (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option(...COMM_DTYPE_FLAG)
    .action((model: string, opts: InspectOptions) => {
      // Mixed --rows-parallel and --ulysses/--ring/--cfg, or --rows-parallel with --fbcache, are refused before any work.
      const parallel = parallelFromFlags(opts);
      const commDtype = commDtypeFromFlags(opts.commDtype, parallel);
      if (parallel.rowsParallel !== undefined && opts.fbcache !== undefined) throw new IrError('E_INPUT', '--rows-parallel with --fbcache: the First Block Cache gates transformer blocks, and a rows-parallel VAE decoder has none; drop --fbcache');
      // Inspecting needs shapes, not values: a model whose external weights are absent is read
      // graph-only (compile, run, check and denoise still demand the weights).
      const raw = loadModel(model, { ...randomOption(opts.randomWeights), graphOnly: true });
      if (raw.meta.randomWeights) process.stderr.write("paradit: note: weights are seeded random data, not the model's own\n");
      if (raw.meta.absentWeights) process.stderr.write('paradit: note: the external weights are absent; inspecting the graph only (shapes, ops and plan stats are exact; no weight values were read)\n');
      if (opts.raw) {
        const s = summarize(raw, model);
        process.stdout.write(opts.json ? `${JSON.stringify(s)}\n` : `${formatSummary(s)}\n`);
        return;
      }
      let afterText: string | undefined;
      const ctx = createPassContext({
        printAfter: opts.after ? [opts.after] : undefined,
        dump: (_pass: string, text: string) => {
          afterText = text;
        },
      });
      const m = injectFault(runPipeline(raw, defaultPipeline(), ctx));
      // --dtype fp8: which layers the fp8 rewrite takes (on the fused module; the plan runs it after the bf16 policy).
      const keep = (opts.keepBf16 ?? []).map(parseKeepPattern);
      if (keep.length > 0 && opts.dtype !== 'fp8') throw new IrError('E_INPUT', `--keep-bf16 ${opts.keepBf16[0]}: only fp8 plans have layers to keep in bf16; add --dtype fp8`);
      const fp8 = opts.dtype === 'fp8' ? summarizeFp8Plan(planFp8Linears(m.graph, keep)) : undefined;
      if (opts.dtype === 'fp8' && opts.after === 'quantize-linears-fp8') runPipeline(m, [quantizeLinearsFp8Pass({ keepBf16: keep })], ctx);
      // --fbcache: the step as `denoise` compiles it (mesh passes, then the gate; fbcache/compile.ts).
      const step = opts.fbcache === undefined ? undefined : compileDenoiseStep(m, { prepared: true, fbcache: true, mesh: meshFromFlags(opts), printAfter: ctx.instruments.printAfter, dump: ctx.instruments.dump });
      if (opts.after) {
        if (afterText === undefined) throw new IrError('E_INPUT', `--after ${opts.after}: no pass of that name ran; the default pipeline's passes are ${defaultPipeline().map((p) => p.name).join(', ')} (and quantize-linears-fp8 with --dtype fp8)`);
        process.stdout.write(`${afterText}\n`);
        return;
      }
      const blocks = discoverBlocks(m.graph);
      if (opts.dot) {
        writeDot(opts.dot, renderBlocksDot(m.graph, blocks, 'blocks'));
        // Said on stderr in text mode; --json reports it as the `dot` field (stderr stays clean).
        if (!opts.json) process.stderr.write(`paradit: wrote the block drawing to ${opts.dot} (render it with: dot -Tsvg ${opts.dot} -o blocks.svg)\n`);
      }
      const base = summarize(m, model);
      const out: Record<string, unknown> = {
        ...base,
        attentionSites: base.opCounts['attention'] ?? 0,
        blocks: blocks.groups.map((g) => ({ kind: g.kind, count: g.count })),
        // Blocks that run before the latent enters (a text token refiner): part of the prologue.
        preBlocks: blocks.preGroups.map((g) => ({ kind: g.kind, count: g.count })),
        // The token streams entering the first block (main: the one that reaches the output).
        streams: blocks.streams.map((st) => ({ role: st.role, dtype: st.value.dtype, shape: [...st.value.shape] })),
        ...(opts.dot ? { dot: opts.dot } : {}),
      };
      const mesh = parallel.mesh; // shared with check (mesh-flags.ts): rejects 0, -1, 'two'
      const rows = parallel.rowsParallel;
      if (mesh) {
        Object.assign(out, meshInspection(compileForMesh(m, mesh, { prepared: true, rowsParallel: rows !== undefined, ...(commDtype ? { commDtype } : {}) }), mesh));
        // --comm-dtype fp8: the received bytes per rank without it (before) and with it (after).
        if (commDtype) out.commDtype = commFp8Inspection(compileForMesh(m, mesh, { prepared: true }), compileForMesh(m, mesh, { prepared: true, commDtype }));
      }
      // Volumes in the activation dtype: the plan's with --target, else the model's.
      const rowsInfo = rows === undefined ? undefined : rowsInspection(m, rows, opts.target ? activationDtype(parsePrecision(opts.dtype ?? 'bf16')) : (m.graph.inputs[0]?.dtype ?? 'f32'));
      if (rowsInfo) out.rowsParallel = rowsInfo;
      const gate = step ? fbcacheSignature(step) : undefined;
      // --target cuda: lower without writing anything (codegen-cuda's planSummary).
      if (opts.target) out.plan = planSummary(raw, opts.target, opts.dtype ?? 'bf16', { fbcache: opts.fbcache !== undefined, fused: m, ...(mesh ? { mesh } : {}), ...(rows !== undefined ? { rowsParallel: true } : {}), ...(keep.length ? { keepBf16: keep } : {}) });
      if (gate) out.fbcache = { totalBlocks: gate.totalBlocks, skippedBlocks: gate.skippedBlocks, state: gate.state.map((p) => p.role) };
      if (fp8) out.fp8 = fp8;
      if (opts.json) process.stdout.write(`${JSON.stringify(out)}\n`);
      else {
        const lines = [formatSummary(base), `attention sites: ${String(out.attentionSites)}`, `blocks: ${blocks.groups.map((g) => `${g.count} x ${g.kind}`).join(', ') || 'none found'}`];
        if (blocks.preGroups.length) lines.push(`pre-blocks (in the prologue): ${blocks.preGroups.map((g) => `${g.count} x ${g.kind}`).join(', ')}`);
        if (blocks.streams.length) lines.push(`streams: ${blocks.streams.map((st) => `${st.role} ${st.value.dtype}[${st.value.shape.join(',')}]`).join(', ')}`);
        if (mesh && out.collectives) lines.push(formatCollectives(mesh, out.collectives as CollectiveLine[]));
        if (rowsInfo) lines.push(formatRowsInspection(rowsInfo));
        if (out.plan) lines.push(...formatPlanStats(`${opts.target}, ${opts.dtype ?? 'bf16'}`, out.plan as Record<string, number | string>));
        if (fp8) lines.push(`fp8 linears: ${fp8.fp8} fp8, ${fp8.bf16} kept in bf16`, ...fp8.kept.map((k) => `  bf16 ${k.node || '(unnamed)'}${k.weight ? ` (${k.weight})` : ''}: ${k.reason}`));
        if (gate) lines.push(`fbcache: gate after block 0; a cached step skips ${gate.skippedBlocks} of ${gate.totalBlocks} blocks; state ${gate.state.map((p) => p.role).join(', ')}`);
        process.stdout.write(`${lines.join('\n')}\n`);
      }
    });
}

interface CollectiveLine {
  readonly op: string;
  readonly count: number;
  readonly bytesPerRank: number;
}

/** `collectives on mesh ...: 24 all_to_all (114.0 KiB per rank), ...` */
function formatCollectives(mesh: { ulysses: number; ring: number; cfg: number }, cs: readonly CollectiveLine[]): string {
  const world = mesh.ulysses * mesh.ring * mesh.cfg;
  const items = cs.map((c) => `${c.count} ${c.op} (${fmtBytes(c.bytesPerRank)} per rank)`).join(', ') || 'none';
  return `collectives on mesh ulysses ${mesh.ulysses} x ring ${mesh.ring} x cfg ${mesh.cfg} (${world} ranks): ${items}`;
}

/** The plan stats of `inspect --target` as a few readable lines (the --json form keeps every field). */
function formatPlanStats(what: string, p: Readonly<Record<string, number | string>>): string[] {
  const n = (k: string): number => Number(p[k] ?? 0);
  const lines = [
    `plan (${what}):`,
    `  memory: peak activations ${fmtBytes(n('peakActivationBytes'))}, weights ${fmtBytes(n('weightsBytes'))}, io ${fmtBytes(n('ioBytes'))}, state ${fmtBytes(n('stateBytes'))}`,
    `  instructions: ${n('kernels')} kernels (${n('kernelEntries')} distinct), ${n('gemms')} gemms, ${n('copies')} copies, ${n('branches')} branches` +
      (n('collectives') || n('shardSlices') ? `, ${n('collectives')} collectives, ${n('shardSlices')} shard slices` : ''),
  ];
  if (p['estimatedStepUs'] !== undefined) {
    lines.push(`  predicted (cost model): step ${(n('estimatedStepUs') / 1000).toFixed(2)} ms, communication ${fmtBytes(n('commBytesPerRank'))} per rank, ${(n('commEstimatedUs') / 1000).toFixed(2)} ms of which ${(n('commHiddenUs') / 1000).toFixed(2)} ms hidden`);
  }
  return lines;
}

interface InspectOptions {
  commDtype?: string;
  json?: boolean;
  raw?: boolean;
  after?: string;
  dot?: string;
  fbcache?: string;
  target?: string;
  dtype?: string;
  keepBf16: string[];
  randomWeights?: string | boolean;
  ulysses?: string;
  ring?: string;
  cfg?: string;
  rowsParallel?: string;
}

/** Writes the drawing through a temporary file, so a failed write leaves nothing half-written. */
function writeDot(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new IrError('E_INPUT', `--dot ${file}: cannot write the drawing (${e instanceof Error ? e.message : String(e)}); pass a path in a writable folder`);
  }
}

/** `--random-weights [seed]` -> the importer's option. */
export function randomOption(flag: string | boolean | undefined): { randomWeights?: { seed: number } } {
  if (flag === undefined || flag === false) return {};
  const seed = flag === true ? 0 : Number(flag);
  return { randomWeights: { seed: Number.isFinite(seed) ? seed : 0 } };
}
