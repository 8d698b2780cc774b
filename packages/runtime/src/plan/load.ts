/**
 * Loads a plan directory and refuses, with a one-paragraph IrError naming the reason and the fix,
 * a plan it cannot run: not a plan (no plan.json, not JSON, another format), another format
 * version, a plan.json that fails the schema, missing files, weights whose size or sha256 differ
 * from plan.json (tampered or truncated), or a plan for another backend/architecture.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { IrError } from '@paradit/ir';
import { PLAN_FORMAT, PLAN_VERSION, planSchema } from './schema';
import type { Plan } from './schema';
import { streamRuleViolation, walkInstrs } from './streams';
import { collectiveBytes } from './collectives';
import { generatedWeightsViolation } from './generated-weights';
import { checkBuffers, checkFiles, checkInstructions } from './validate';
import type { Refuse } from './validate';

interface LoadPlanOptions {
  /** Hash weights.bin and compare with plan.json (default true; off for speed). */
  readonly verifyWeights?: boolean;
  /** The backend that will run it: 'cpu' runs any plan through its refs; 'cuda' needs a cuda plan. */
  readonly backend?: 'cpu' | 'cuda';
  /** For the cuda backend: the device architecture (e.g. "sm_90a"); refused when it differs. */
  readonly arch?: string;
}

/** What a backend needs from a plan directory (a superset of cuda/plan-files' LoadedPlanFiles). */
export interface LoadedPlan {
  readonly dir: string;
  readonly plan: Plan;
  /** kernels/module.cu */
  readonly source: string;
  readonly cubin: Uint8Array | undefined;
  readonly weightsPath: string;
}

const refuse = (dir: string, why: string, fix: string): never => {
  throw new IrError('E_INPUT', `cannot load plan ${dir}: ${why}; ${fix}`);
};

/** The sha256 of a file of any size, read in 8 MiB pieces (hex). */
export function sha256OfFile(file: string): string {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(8 << 20);
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

const RECOMPILE = 'recompile it with `paradit compile MODEL -o PLAN --target cuda`';

/** Refuses the plan whose weights file (at `weightsPath`) hashes to `got` instead of `want`. */
export function checkWeightsSha256(weightsPath: string, got: string, want: string): void {
  if (got !== want) {
    refuse(path.dirname(weightsPath), `${path.basename(weightsPath)} has sha256 ${got.slice(0, 16)}…, plan.json says ${want.slice(0, 16)}… (the weights were modified)`, RECOMPILE);
  }
}

function readJson(dir: string): unknown {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) refuse(dir, 'no such directory', 'pass the folder `paradit compile -o` wrote');
  const file = path.join(dir, 'plan.json');
  if (!fs.existsSync(file)) refuse(dir, 'it has no plan.json, so it is not a plan directory', 'pass the folder `paradit compile -o` wrote');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    return refuse(dir, `plan.json is not valid JSON (${(e as Error).message})`, RECOMPILE);
  }
}

/** Format, version and schema; version is checked first so a newer plan gets the version message. */
function parsePlanJson(dir: string, raw: unknown): Plan {
  const head = (raw ?? {}) as { format?: unknown; version?: unknown };
  if (head.format !== PLAN_FORMAT) refuse(dir, `plan.json has format ${JSON.stringify(head.format)}, expected '${PLAN_FORMAT}'`, 'this is not a ParaDiT plan; ' + RECOMPILE);
  if (head.version !== PLAN_VERSION) {
    refuse(dir, `plan format version ${JSON.stringify(head.version)} is not supported (this runtime reads version ${PLAN_VERSION})`, `${RECOMPILE} using this version of ParaDiT`);
  }
  if ((raw as { files?: unknown }).files === undefined) {
    refuse(dir, 'plan.json records no checksums of its kernel files (it was written before plans carried them)', RECOMPILE);
  }
  const parsed = planSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    refuse(dir, `plan.json does not match the version ${PLAN_VERSION} schema (${issues.join('; ')})`, `the file was edited or is corrupt; ${RECOMPILE}`);
  }
  return parsed.data!;
}

/** Buffers inside their spaces, instruction buffer ids declared (cheap structural checks). */
function checkStructure(dir: string, plan: Plan): void {
  const ids = new Set<number>();
  for (const b of plan.buffers) {
    if (b.offset + b.bytes > plan.spaces[b.space]) refuse(dir, `buffer ${b.id} '${b.name}' ends at byte ${b.offset + b.bytes} of the ${b.space} space, which has ${plan.spaces[b.space]}`, RECOMPILE);
    ids.add(b.id);
  }
  for (const io of [...plan.inputs, ...plan.outputs, ...plan.state]) if (!ids.has(io.buf)) refuse(dir, `'${io.name}' names buffer ${io.buf}, which is not declared`, RECOMPILE);
  const byId = new Map(plan.buffers.map((b) => [b.id, b]));
  const buf = (id: number, at: string) => byId.get(id) ?? refuse(dir, `instruction ${at} names buffer ${id}, which is not declared`, RECOMPILE);
  const mesh = plan.target.mesh;
  const axisSize = { cfg: mesh.cfg, ring: mesh.ring, ulysses: mesh.ulysses, sp: mesh.ring * mesh.ulysses };
  for (const [ins, at] of walkInstrs(plan.program)) {
    if (ins.op !== 'collective' && ins.op !== 'shard_slice') continue;
    if (ins.groupSize !== axisSize[ins.meshAxis]) {
      refuse(dir, `instruction ${at} (${ins.op} over '${ins.meshAxis}') has groupSize ${ins.groupSize}, but the plan's mesh gives that axis ${axisSize[ins.meshAxis]} ranks`, RECOMPILE);
    }
    if (ins.op === 'collective') {
      const s = buf(ins.send, at);
      const r = buf(ins.recv, at);
      const want = collectiveBytes(ins, s.bytes);
      if (r.bytes !== want.recv || s.dtype !== r.dtype) refuse(dir, `instruction ${at} (${ins.collective}) sends ${s.bytes} bytes of ${s.dtype} into a receive buffer of ${r.bytes} bytes of ${r.dtype}; expected ${want.recv}`, RECOMPILE);
      if (ins.collective === 'all_to_all' && s.bytes % ins.groupSize !== 0) refuse(dir, `instruction ${at} (all_to_all): ${s.bytes} bytes do not split into ${ins.groupSize} chunks`, RECOMPILE);
    } else {
      const s = buf(ins.src, at);
      const d = buf(ins.dst, at);
      if (s.bytes !== ins.rows * ins.groupSize * ins.partBytes || d.bytes !== ins.rows * ins.partBytes) {
        refuse(dir, `instruction ${at} (shard_slice) copies ${ins.rows} rows of ${ins.partBytes} bytes out of ${s.bytes} into ${d.bytes} bytes, which do not match`, RECOMPILE);
      }
    }
  }
  const gen = generatedWeightsViolation(plan);
  if (gen) refuse(dir, gen, RECOMPILE);
  const bad = streamRuleViolation(plan.program, plan.events);
  if (bad) refuse(dir, `its streams and events break the plan's rules: ${bad}`, RECOMPILE);
}

function checkTarget(dir: string, plan: Plan, opts: LoadPlanOptions): void {
  if (opts.backend === 'cuda') {
    if (plan.target.backend !== 'cuda') refuse(dir, `the plan targets the ${plan.target.backend} backend, not cuda`, 'recompile it with --target cuda');
    if (opts.arch && plan.target.arch !== opts.arch) {
      refuse(dir, `the plan was compiled for ${plan.target.arch} but this GPU is ${opts.arch}`, 'recompile the plan for this GPU');
    }
    if ((plan.stats['stubKernels'] ?? 0) > 0) {
      refuse(dir, `${plan.stats['stubKernels']} of its kernels have no CUDA body (compiled before the kernel emitter existed)`, 'run it with --backend cpu, or recompile it with a build that has the CUDA kernel emitter');
    }
  }
}

export function loadPlan(dir: string, opts: LoadPlanOptions = {}): LoadedPlan {
  const plan = parsePlanJson(dir, readJson(dir));
  const refuseHere: Refuse = (why, fix) => refuse(dir, why, fix);
  const byId = checkBuffers(plan, refuseHere);
  checkStructure(dir, plan);
  checkInstructions(plan, byId, refuseHere);
  checkFiles(dir, plan, refuseHere);
  checkTarget(dir, plan, opts);
  const weightsPath = path.join(dir, plan.weights.file);
  if (!fs.existsSync(weightsPath)) refuse(dir, `${plan.weights.file} is missing`, 'copy the whole plan directory, or ' + RECOMPILE);
  const size = fs.statSync(weightsPath).size;
  if (size !== plan.weights.bytes) refuse(dir, `${plan.weights.file} has ${size} bytes, plan.json says ${plan.weights.bytes} (truncated or replaced)`, RECOMPILE);
  if (opts.verifyWeights !== false) checkWeightsSha256(weightsPath, sha256OfFile(weightsPath), plan.weights.sha256);
  const srcPath = path.join(dir, plan.kernels.source);
  if (!fs.existsSync(srcPath)) refuse(dir, `${plan.kernels.source} is missing`, 'copy the whole plan directory, or ' + RECOMPILE);
  let cubin: Uint8Array | undefined;
  if (plan.kernels.cubin) {
    const p = path.join(dir, plan.kernels.cubin);
    if (!fs.existsSync(p)) refuse(dir, `${plan.kernels.cubin} is listed in plan.json but missing`, 'copy the whole plan directory, or ' + RECOMPILE);
    cubin = new Uint8Array(fs.readFileSync(p));
  }
  return { dir, plan, source: fs.readFileSync(srcPath, 'utf8'), cubin, weightsPath };
}
