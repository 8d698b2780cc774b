/**
 * StepExecutor: one denoising step of a compiled module, behind a backend-neutral interface, with
 * the module's persistent state (graph inputs X with outputs X.next, fbcache-signature.ts) kept
 * inside the executor: each step feeds the previous step's X.next back as X, and `resetState`
 * zeroes it (a new generation). Callers see only the other inputs and outputs.
 *
 * Two implementations here: the reference interpreter (one process, one rank) and simulated ranks
 * (a module compiled for a mesh, every rank in lockstep, each rank holding its own state shard).
 * A CUDA executor implements the same interface over a plan.
 */
import { IrError, Tensor, formatMesh, formatType, interpret, isStaticShape, simulateRanks, worldSize } from '@paradit/ir';
import type { Mesh, Module, Value } from '@paradit/ir';
import { fbcacheSignature, statePairs } from './fbcache-signature';
import type { StatePair } from './fbcache-signature';

export interface StepExecutor {
  /** Inputs a step takes (state inputs excluded). */
  readonly inputNames: readonly string[];
  /** Outputs a step returns (state outputs excluded). */
  readonly outputNames: readonly string[];
  /** Blocks of the model, and how many a cached step skips (0 without a cache gate). */
  readonly blocks?: { readonly total: number; readonly skippedWhenCached: number };
  step(inputs: ReadonlyMap<string, Tensor>): Promise<Map<string, Tensor>>;
  /** Zeroes the persistent state (start of a generation). */
  resetState(): void;
}

function outputName(v: Value, k: number): string {
  return v.name || `output_${k}`;
}

function zerosFor(v: Value): Tensor {
  if (!isStaticShape(v.shape)) {
    throw new IrError('E_INPUT', `state input '${v.name}' has a symbolic shape ${formatType(v.type)}; compile the step for static shapes (its state buffers are allocated once)`);
  }
  return Tensor.zeros(v.dtype, v.shape);
}

/** What both executors share: names, the state pairs, and the split of the outputs. */
abstract class StatefulExecutor implements StepExecutor {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly blocks?: { readonly total: number; readonly skippedWhenCached: number };
  protected readonly pairs: StatePair[];
  private readonly stateOutputs: Set<number>;

  constructor(protected readonly module: Module) {
    this.pairs = statePairs(module);
    const stateInputs = new Set(this.pairs.map((p) => p.inputIndex));
    this.stateOutputs = new Set(this.pairs.map((p) => p.outputIndex));
    this.inputNames = module.graph.inputs.filter((_, i) => !stateInputs.has(i)).map((v) => v.name);
    this.outputNames = module.graph.outputs.filter((_, k) => !this.stateOutputs.has(k)).map(outputName);
    const sig = fbcacheSignature(module);
    if (sig) this.blocks = { total: sig.totalBlocks, skippedWhenCached: sig.skippedBlocks };
  }

  abstract step(inputs: ReadonlyMap<string, Tensor>): Promise<Map<string, Tensor>>;
  abstract resetState(): void;

  protected checkInputs(inputs: ReadonlyMap<string, Tensor>): void {
    const missing = this.inputNames.filter((n) => !inputs.has(n));
    if (missing.length) throw new IrError('E_INPUT', `the step needs inputs ${missing.map((n) => `'${n}'`).join(', ')}, which were not given`);
  }

  /** Non-state outputs by name. */
  protected visible(outs: readonly Tensor[]): Map<string, Tensor> {
    const r = new Map<string, Tensor>();
    this.module.graph.outputs.forEach((v, k) => {
      if (!this.stateOutputs.has(k)) r.set(outputName(v, k), outs[k]!);
    });
    return r;
  }
}

/** Runs each step with the reference interpreter. */
export class InterpreterStepExecutor extends StatefulExecutor {
  private state = new Map<string, Tensor>();

  constructor(module: Module) {
    super(module);
    this.resetState();
  }

  resetState(): void {
    this.state = new Map(this.pairs.map((p) => [p.input.name, zerosFor(p.input)]));
  }

  async step(inputs: ReadonlyMap<string, Tensor>): Promise<Map<string, Tensor>> {
    this.checkInputs(inputs);
    const all = new Map(inputs);
    for (const [k, t] of this.state) all.set(k, t);
    const outs = interpret(this.module, all);
    for (const p of this.pairs) this.state.set(p.input.name, outs[p.outputIndex]!);
    return this.visible(outs);
  }
}

/**
 * Runs each step on simulated ranks (`module` compiled for `mesh`). State is per rank; every
 * other output must be identical on all ranks (the plan gathers its outputs and every rank makes
 * the same cache decision), which is checked.
 */
export class SimulatedStepExecutor extends StatefulExecutor {
  private state = new Map<string, Tensor[]>();
  private readonly world: number;

  constructor(
    module: Module,
    private readonly mesh: Mesh,
  ) {
    super(module);
    this.world = worldSize(mesh);
    this.resetState();
  }

  resetState(): void {
    this.state = new Map(this.pairs.map((p) => [p.input.name, Array.from({ length: this.world }, () => zerosFor(p.input))]));
  }

  async step(inputs: ReadonlyMap<string, Tensor>): Promise<Map<string, Tensor>> {
    this.checkInputs(inputs);
    const perRank = simulateRanks(this.module, this.mesh, inputs, { rankInputs: this.state });
    for (const p of this.pairs) this.state.set(p.input.name, perRank.map((outs) => outs[p.outputIndex]!));
    const first = perRank[0]!;
    const visible = this.visible(first);
    for (const [name, t] of visible) {
      const k = this.module.graph.outputs.findIndex((v, i) => outputName(v, i) === name);
      perRank.forEach((outs, rank) => {
        const o = outs[k]!;
        if (o !== t && !sameData(o, t)) {
          throw new IrError('E_RUNTIME', `ranks 0 and ${rank} of mesh ${formatMesh(this.mesh)} computed different values for output '${name}'; the plan must make it identical on every rank`);
        }
      });
    }
    return visible;
  }
}

function sameData(a: Tensor, b: Tensor): boolean {
  if (a.dtype !== b.dtype || a.size !== b.size) return false;
  for (let i = 0; i < a.size; i++) if (!Object.is(a.data[i], b.data[i]) && a.data[i] !== b.data[i]) return false;
  return true;
}
