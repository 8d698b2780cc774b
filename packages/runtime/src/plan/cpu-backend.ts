/**
 * The CPU backend: runs a plan without a GPU by executing each instruction's `ref` (an IR text
 * fragment) with the reference interpreter, reading its inputs from and writing its outputs to
 * byte buffers laid out exactly as plan.json says (four spaces, fixed offsets). Wrong memory
 * planning (two live values sharing bytes), wrong instruction order or a wrong view therefore show
 * up as wrong results. The arena is filled with 0xFF (NaN for every float dtype) before each step
 * so that reading bytes no instruction wrote shows up too.
 *
 * A plan compiled for a mesh runs as one rank (`rank`): shard_slice takes the rank's part, and
 * each collective is handed to `collectives` (simulated ranks in this process, or other processes)
 * which fills the receive buffer; streams and events only order GPU work, so instructions run in
 * program order here.
 */
import fs from 'node:fs';
import { IrError, Module, Tensor, formatMesh, interpret, isFloat, makeMesh, parseModule, worldSize, wrapAt } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import type { StepExecutor } from '../denoise/step-executor';
import type { BufferDecl, Instr, Plan, Space } from './schema';
import { decodeTensor, encodeInto } from './bytes';
import { fillGeneratedWeights } from './generated-weights';
import type { LoadedPlan } from './load';
import type { CollectiveRequest } from './collectives';
import { memberIndexOf, shardSliceInto } from './collectives';

/** Performs one collective for this rank: fills `req.recv` from the group's sends. */
export type CollectiveRunner = (req: CollectiveRequest) => Promise<void>;

export interface CpuBackendOptions {
  /** Fill the arena with NaN bytes before each step (default true). */
  readonly poisonArena?: boolean;
  /** Called after each executed instruction (tracing, debugging). */
  readonly onInstr?: (instr: Instr, seconds: number) => void;
}

interface CpuRankOptions extends CpuBackendOptions {
  /** This process's rank in the plan's mesh (default 0). */
  readonly rank?: number;
  /** Required when the plan's mesh has more than one rank. */
  readonly collectives?: CollectiveRunner;
  /** The weights space, already read (ranks of one process share it). */
  readonly weights?: Uint8Array;
}

/** The plan's weights space: weights.bin, then the generated weights (generated-weights.ts). */
export function readWeightsSpace(loaded: LoadedPlan): Uint8Array {
  const plan = loaded.plan;
  const weights = new Uint8Array(plan.spaces.weights);
  if (plan.weights.bytes > 0) {
    const fd = fs.openSync(loaded.weightsPath, 'r');
    try {
      for (let pos = 0; pos < plan.weights.bytes; ) {
        const n = fs.readSync(fd, weights, pos, Math.min(plan.weights.bytes - pos, 1 << 30), pos);
        if (n <= 0) throw new IrError('E_INPUT', `${loaded.weightsPath}: unexpected end of file at byte ${pos} of ${plan.weights.bytes}; recompile the plan`);
        pos += n;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  fillGeneratedWeights(plan, weights);
  return weights;
}

/** The mesh of a plan as @paradit/ir's Mesh. */
export function planMesh(plan: Plan): Mesh {
  return makeMesh(plan.target.mesh);
}

type Spaces = Record<Space, Uint8Array>;

export class CpuPlanBackend implements StepExecutor {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly blocks?: { readonly total: number; readonly skippedWhenCached: number };
  readonly plan: Plan;
  private readonly spaces: Spaces;
  private readonly buffers = new Map<number, BufferDecl>();
  private readonly refs = new WeakMap<Instr, Module>();
  readonly rank: number;
  readonly mesh: Mesh;

  constructor(
    loaded: LoadedPlan,
    private readonly opts: CpuRankOptions = {},
  ) {
    const plan = loaded.plan;
    this.plan = plan;
    this.mesh = planMesh(plan);
    this.rank = opts.rank ?? 0;
    const W = worldSize(this.mesh);
    if (!Number.isInteger(this.rank) || this.rank < 0 || this.rank >= W) {
      throw new IrError('E_INPUT', `rank ${this.rank} is outside the plan's mesh ${formatMesh(this.mesh)}`);
    }
    if (W > 1 && !opts.collectives) {
      throw new IrError(
        'E_INPUT',
        `${loaded.dir}: the plan was compiled for mesh ${formatMesh(this.mesh)}, so it runs on ${W} ranks; run it with simulated ranks (SimulatedPlanRanks, or ` +
          '`paradit run/check --backend cpu` without a launcher) or start one process per rank (`paradit launch --nproc ' + W + ' -- run ...`)',
      );
    }
    for (const b of plan.buffers) this.buffers.set(b.id, b);
    this.spaces = {
      weights: opts.weights ?? readWeightsSpace(loaded),
      io: new Uint8Array(plan.spaces.io),
      arena: new Uint8Array(plan.spaces.arena),
      state: new Uint8Array(plan.spaces.state),
    };
    this.inputNames = plan.inputs.map((x) => x.name);
    this.outputNames = plan.outputs.map((x) => x.name);
    const total = plan.stats['fbcacheTotalBlocks'];
    const skipped = plan.stats['fbcacheSkippedBlocks'];
    if (total !== undefined && skipped !== undefined) this.blocks = { total, skippedWhenCached: skipped };
  }

  resetState(): void {
    this.spaces.state.fill(0);
  }

  /** The bytes of buffer `id` (a view into its space). */
  bytes(id: number): Uint8Array {
    const b = this.buffers.get(id);
    if (!b) throw new IrError('E_RUNTIME', `plan references buffer ${id}, which is not declared`);
    return this.spaces[b.space].subarray(b.offset, b.offset + b.bytes);
  }

  read(id: number): Tensor {
    const b = this.buffers.get(id)!;
    return decodeTensor(this.bytes(id), b.dtype, b.shape);
  }

  private write(id: number, t: Tensor, what: string): void {
    const b = this.buffers.get(id)!;
    const same = t.shape.length === b.shape.length && t.shape.every((d, i) => d === b.shape[i]);
    if (!same) throw new IrError('E_RUNTIME', `${what}: buffer ${id} '${b.name}' is ${b.dtype}[${b.shape.join(',')}], got ${t.dtype}[${t.shape.join(',')}]`);
    encodeInto(t, b.dtype, this.bytes(id));
  }

  async step(inputs: ReadonlyMap<string, Tensor>): Promise<Map<string, Tensor>> {
    for (const x of this.plan.inputs) {
      const t = inputs.get(x.name);
      if (!t) throw new IrError('E_INPUT', `the plan needs input '${x.name}', which was not given (inputs: ${this.inputNames.join(', ')})`);
      const b = this.buffers.get(x.buf)!;
      if (t.dtype !== b.dtype && !(isFloat(t.dtype) && isFloat(b.dtype))) {
        throw new IrError('E_INPUT', `input '${x.name}' must be ${b.dtype}[${b.shape.join(',')}], got ${t.dtype}[${t.shape.join(',')}]`);
      }
      this.write(x.buf, t, `input '${x.name}'`);
    }
    if (this.opts.poisonArena !== false) this.spaces.arena.fill(0xff);
    for (const req of this.run(this.plan.program, '')) {
      if (!this.opts.collectives) throw new IrError('E_RUNTIME', `instruction ${req.where} is a collective, but this rank has no communicator`);
      await this.opts.collectives(req);
    }
    return new Map(this.plan.outputs.map((x) => [x.name, this.read(x.buf)]));
  }

  /** Runs the program, yielding at each collective; the caller fills `recv` before resuming. */
  private *run(program: readonly Instr[], where: string): Generator<CollectiveRequest, void, void> {
    for (let i = 0; i < program.length; i++) {
      const instr = program[i]!;
      const t0 = this.opts.onInstr ? performance.now() : 0;
      if (instr.op === 'branch') {
        const c = this.bytes(instr.cond)[0]! !== 0;
        yield* this.run(c ? instr.then : instr.else, `${where}${i}.${c ? 'then' : 'else'}.`);
      } else if (instr.op === 'collective') {
        const send = this.bytes(instr.send);
        const recv = this.bytes(instr.recv);
        // An in-place all-reduce reads and writes one buffer: send a copy.
        yield { instr, where: `${where}${i}`, send: instr.send === instr.recv ? send.slice() : send, recv, dtype: this.buffers.get(instr.send)!.dtype };
      } else this.exec(instr);
      this.opts.onInstr?.(instr, (performance.now() - t0) / 1000);
    }
  }

  private exec(instr: Exclude<Instr, { op: 'branch' } | { op: 'collective' }>): void {
    switch (instr.op) {
      case 'copy': {
        const src = this.bytes(instr.src);
        const dst = this.bytes(instr.dst);
        if (src.byteLength !== dst.byteLength) throw new IrError('E_RUNTIME', `copy ${instr.origin.join(', ')}: ${src.byteLength} bytes into ${dst.byteLength}`);
        dst.set(src.slice());
        return;
      }
      case 'shard_slice':
        shardSliceInto(instr, memberIndexOf(this.mesh, instr.meshAxis, this.rank), this.bytes(instr.src).slice(), this.bytes(instr.dst));
        return;
      case 'kernel':
      case 'gemm':
        this.execRef(instr);
        return;
      default: {
        const never: never = instr;
        throw new IrError('E_RUNTIME', `unknown instruction ${JSON.stringify(never)}`);
      }
    }
  }

  private execRef(instr: Instr): void {
    const ref = instr.ref;
    const where = `${instr.op} ${instr.op === 'kernel' ? `'${instr.kernel}' ` : ''}(from ${instr.origin.join(', ')})`;
    if (!ref) throw new IrError('E_RUNTIME', `${where} has no ref fragment, so the CPU backend cannot run it; recompile the plan`);
    let m = this.refs.get(instr);
    if (!m) {
      try {
        m = parseModule(ref.text);
      } catch (e) {
        throw wrapAt(e, `${where}: its ref fragment`);
      }
      this.refs.set(instr, m);
    }
    const ins = ref.inputs.map((id) => this.read(id));
    let outs: Tensor[];
    try {
      outs = interpret(m, ins);
    } catch (e) {
      throw wrapAt(e, where);
    }
    ref.outputs.forEach((id, k) => this.write(id, outs[k]!, where));
  }
}
