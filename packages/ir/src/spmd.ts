/**
 * The SPMD simulator: runs a module compiled for a mesh on all W ranks in lockstep in one
 * process, with the real semantics of every collective, so each sharded plan is testable on a
 * CPU. Every rank runs the same graph (SPMD); node by node, local ops run per rank through the
 * interpreter's rules, and collectives (ops marked rankDependent) take all ranks' operands at once
 * and return each rank's result through the table below.
 *
 * Every rank receives the full model inputs (the plan's shard_slice ops split them). Work that is
 * identical on several ranks (the replicated prefix: same input tensors by identity) runs once.
 * Model outputs must be replicated: the simulator checks that every rank returns the same data.
 */
import type { Graph, Module, Node, Value } from './graph';
import { formatType } from './graph';
import { Tensor, allocData } from './tensor';
import { InternalError, IrError, wrapAt } from './errors';
import { OPS, AttrReader, makeFail } from './ops';
import type { RunCtx } from './ops/rule';
import { capturedValues, runGraph } from './interpreter';
import type { Mesh, MeshAxis } from './mesh';
import { axisSize, formatMesh, groupsOf, isMeshAxis, worldSize } from './mesh';
import { concatAxis, sliceAxis, splitAxis } from './ops/collective-kernels';
import type { CollectiveOp } from './ops/op-kinds';

/** The collectives: ops whose results need other ranks' data or this rank's coordinates. */
type RankDependentOp = Extract<CollectiveOp, 'all_to_all' | 'all_gather' | 'all_reduce' | 'ppermute' | 'shard_slice'>;

interface SimCtx {
  readonly node: Node;
  readonly attr: AttrReader;
  readonly mesh: Mesh;
  /** Per rank, the node's input tensors. */
  readonly ins: readonly (readonly Tensor[])[];
  fail(message: string): never;
}

/** Each rank's outputs (one list per rank), computed group by group. */
type Simulate = (ctx: SimCtx) => Tensor[][];

/** The groups of the node's mesh axis, after checking the node was compiled for this mesh. */
function groupsFor(ctx: SimCtx): { axis: MeshAxis; groups: number[][]; n: number } {
  const name = ctx.attr.string('meshAxis');
  if (!isMeshAxis(name)) ctx.fail(`unknown mesh axis '${name}'`);
  const n = axisSize(ctx.mesh, name);
  const declared = ctx.attr.int('groupSize');
  if (declared !== n) {
    ctx.fail(`was compiled for a group of ${declared} ranks on '${name}', but the mesh ${formatMesh(ctx.mesh)} has ${n}; recompile for this mesh`);
  }
  return { axis: name, groups: groupsOf(ctx.mesh, name), n };
}

const mod = (a: number, n: number): number => ((a % n) + n) % n;

function perRank(ctx: SimCtx, f: (group: number[], member: number, rank: number) => Tensor): Tensor[][] {
  const out: Tensor[][] = ctx.ins.map(() => []);
  for (const g of groupsFor(ctx).groups) g.forEach((rank, i) => (out[rank] = [f(g, i, rank)]));
  return out;
}

const SIMULATE: { readonly [K in RankDependentOp]: Simulate } = {
  all_to_all(ctx) {
    const split = ctx.attr.int('splitAxis');
    const concat = ctx.attr.int('concatAxis');
    const { groups, n } = groupsFor(ctx);
    const out: Tensor[][] = ctx.ins.map(() => []);
    for (const g of groups) {
      const parts = g.map((rank) => splitAxis(ctx.ins[rank]![0]!, norm(split, ctx.ins[rank]![0]!), n));
      g.forEach((rank, j) => {
        const x = ctx.ins[rank]![0]!;
        out[rank] = [concatAxis(g.map((_, i) => parts[i]![j]!), norm(concat, x))];
      });
    }
    return out;
  },
  all_gather(ctx) {
    const axis = ctx.attr.int('axis');
    const out: Tensor[][] = ctx.ins.map(() => []);
    for (const g of groupsFor(ctx).groups) {
      const x0 = ctx.ins[g[0]!]![0]!;
      // Every member gets the same tensor object, so later identical work runs once.
      const full = concatAxis(g.map((rank) => ctx.ins[rank]![0]!), norm(axis, x0));
      for (const rank of g) out[rank] = [full];
    }
    return out;
  },
  all_reduce(ctx) {
    const reduce = ctx.attr.string('reduce');
    const out: Tensor[][] = ctx.ins.map(() => []);
    for (const g of groupsFor(ctx).groups) {
      const xs = g.map((rank) => ctx.ins[rank]![0]!);
      const x0 = xs[0]!;
      const acc = new Float64Array(x0.size).fill(reduce === 'max' ? -Infinity : 0);
      for (const x of xs) {
        if (x.size !== x0.size) ctx.fail(`ranks hold different shapes [${x0.shape.join(',')}] and [${x.shape.join(',')}]`);
        for (let i = 0; i < acc.length; i++) acc[i] = reduce === 'max' ? Math.max(acc[i]!, x.data[i]!) : acc[i]! + x.data[i]!;
      }
      if (reduce === 'mean') for (let i = 0; i < acc.length; i++) acc[i]! /= xs.length;
      const data = allocData(x0.dtype, acc.length);
      data.set(acc);
      const r = Tensor.normalized(x0.dtype, x0.shape, data);
      for (const rank of g) out[rank] = [r];
    }
    return out;
  },
  ppermute(ctx) {
    const shift = ctx.attr.int('shift');
    const cyclic = ctx.attr.int('cyclic', 1) !== 0;
    const out: Tensor[][] = ctx.ins.map(() => []);
    for (const g of groupsFor(ctx).groups) {
      g.forEach((rank, i) => {
        const x = ctx.ins[rank]![0]!;
        const to = i + shift;
        if (cyclic) out[g[mod(to, g.length)]!] = [x];
        else if (to >= 0 && to < g.length) out[g[to]!] = [x];
      });
      // Non-cyclic: a member nobody sends to receives zeros (the image edge's padding).
      for (const rank of g) {
        const x = ctx.ins[rank]![0]!;
        if (out[rank]!.length === 0) out[rank] = [new Tensor(x.dtype, x.shape, allocData(x.dtype, x.data.length))];
      }
    }
    return out;
  },
  shard_slice(ctx) {
    const axis = ctx.attr.int('axis');
    const shift = ctx.attr.int('shift', 0);
    const { n } = groupsFor(ctx);
    return perRank(ctx, (_g, i, rank) => {
      const x = ctx.ins[rank]![0]!;
      const a = norm(axis, x);
      const len = x.shape[a]! / n;
      return sliceAxis(x, a, mod(i - shift, n) * len, len);
    });
  },
};

function norm(axis: number, x: Tensor): number {
  return axis < 0 ? axis + x.rank : axis;
}

function isRankDependent(op: string): op is RankDependentOp {
  return Object.prototype.hasOwnProperty.call(SIMULATE, op);
}

interface SimulateOptions {
  /** Called after each node with every rank's outputs (tracing, volume counting). */
  readonly onNode?: (node: Node, outputs: readonly (readonly Tensor[])[]) => void;
  /**
   * Per-rank values for the named graph inputs (one tensor per rank, in rank order): persistent
   * per-rank state such as First Block Cache's residuals, which each rank holds for its own shard.
   * The types are checked against the input's per-rank type.
   */
  readonly rankInputs?: ReadonlyMap<string, readonly Tensor[]>;
}

/** Runs all ranks and returns each rank's outputs (outer index: rank). */
export function simulateRanks(m: Module, mesh: Mesh, inputs: readonly Tensor[] | ReadonlyMap<string, Tensor>, opts: SimulateOptions = {}): Tensor[][] {
  const g = m.graph;
  const W = worldSize(mesh);
  const list = Array.isArray(inputs) ? inputs : undefined;
  if (list && list.length !== g.inputs.length) {
    throw new IrError('E_INPUT', `the model has ${g.inputs.length} inputs (${g.inputs.map((v) => v.name).join(', ')}), got ${list.length}`);
  }
  const envs = Array.from({ length: W }, () => new Map<Value, Tensor>());
  const checkType = (v: Value, t: Tensor, what: string): void => {
    if (t.dtype !== v.dtype || t.shape.length !== v.shape.length || v.shape.some((d, k) => typeof d === 'number' && d !== t.shape[k])) {
      throw new IrError('E_INPUT', `input '${v.name}'${what}: the model expects ${formatType(v.type)}, got ${t.dtype}[${t.shape.join(',')}]`);
    }
  };
  g.inputs.forEach((v, i) => {
    const perRank = opts.rankInputs?.get(v.name);
    if (perRank) {
      if (perRank.length !== W) throw new IrError('E_INPUT', `input '${v.name}': ${perRank.length} per-rank values given for a world of ${W} ranks`);
      perRank.forEach((t, rank) => {
        checkType(v, t, ` on rank ${rank}`);
        envs[rank]!.set(v, t);
      });
      return;
    }
    const t = list ? list[i] : (inputs as ReadonlyMap<string, Tensor>).get(v.name);
    if (!t) throw new IrError('E_INPUT', `missing value for model input '${v.name}' (${formatType(v.type)})`);
    checkType(v, t, '');
    for (const env of envs) env.set(v, t);
  });
  simulateGraph(g, envs, mesh, m.opset, opts);
  return envs.map((env) => g.outputs.map((v) => read(env, v)));
}

function read(env: Map<Value, Tensor>, v: Value): Tensor {
  const t = env.get(v);
  if (t) return t;
  if (v.constant) return v.constant.tensor();
  throw new IrError('E_RUNTIME', `value '${v.name || v.id}' is read before it is defined`);
}

/**
 * Runs the nodes of `g` on every rank in lockstep, with `envs` (one per rank) holding the values
 * bound so far; subgraphs of `If` run the same way (see simulateIf).
 */
function simulateGraph(g: Graph, envs: Map<Value, Tensor>[], mesh: Mesh, opset: number, opts: SimulateOptions): void {
  const lastUse = new Map<Value, number>();
  g.nodes.forEach((n, i) => {
    n.inputs.forEach((v) => v && lastUse.set(v, i));
    // Values a branch reads from this graph stay bound until that node ran.
    for (const sg of n.subgraphs()) for (const v of capturedValues(sg)) lastUse.set(v, i);
  });
  const keep = new Set<Value>([...g.outputs, ...g.inputs]);

  g.nodes.forEach((node, idx) => {
    const fail = makeFail(node);
    const attr = new AttrReader(node.attrs, fail);
    const ins = envs.map((env) => node.inputs.map((v) => (v ? read(env, v) : undefined)));
    let outs: Tensor[][];
    try {
      if (isRankDependent(node.op)) {
        const full = ins.map((xs) => xs.map((x, k) => x ?? fail(`input ${k} is required`)));
        outs = SIMULATE[node.op]({ node, attr, mesh, ins: full, fail });
      } else if (node.op === 'If') {
        outs = simulateIf(node, ins, attr, fail, envs, mesh, opset, opts);
      } else {
        outs = runLocal(node, ins, attr, fail, envs, opset);
      }
    } catch (e) {
      if (e instanceof IrError) throw e;
      // Not a rejection of the operands (those are IrErrors from ctx.fail): a bug in the op's rule.
      throw wrapAt(e, `${node.label} (the interpreter's ${node.op} rule)`);
    }
    outs.forEach((rankOuts, rank) => {
      node.outputs.forEach((v, k) => {
        const t = rankOuts[k];
        if (!t) throw new InternalError(`${node.label}: rank ${rank} produced ${rankOuts.length} outputs, the node declares ${node.outputs.length}`, node.label);
        const shapeOk = t.shape.length === v.shape.length && v.shape.every((d, j) => typeof d === 'string' || d === t.shape[j]);
        if (t.dtype !== v.dtype || !shapeOk) {
          throw new InternalError(`${node.label}: rank ${rank} produced ${t.dtype}[${t.shape.join(',')}] but its type is ${formatType(v.type)} (simulator and shape rule disagree)`, node.label);
        }
        envs[rank]!.set(v, t);
      });
    });
    opts.onNode?.(node, outs);
    for (const v of node.inputs) {
      if (v && lastUse.get(v) === idx && !keep.has(v)) for (const env of envs) env.delete(v);
    }
  });
}

function hasRankDependent(g: Graph): boolean {
  return g.nodes.some((n) => isRankDependent(n.op) || n.subgraphs().some(hasRankDependent));
}

/**
 * `If`: its branches read each rank's own values (never deduplicated by the condition alone). When
 * every rank takes the same branch it runs in lockstep, so branches may hold collectives (a plan
 * makes such a condition identical on every rank, e.g. through an all_reduce); otherwise each rank
 * runs its branch alone, which is only possible without collectives.
 */
function simulateIf(
  node: Node,
  ins: readonly (readonly (Tensor | undefined)[])[],
  attr: AttrReader,
  fail: (m: string) => never,
  envs: readonly Map<Value, Tensor>[],
  mesh: Mesh,
  opset: number,
  opts: SimulateOptions,
): Tensor[][] {
  const conds = ins.map((xs) => Boolean((xs[0] ?? fail('input 0 (the condition) is required')).data[0]));
  if (conds.some((c) => c !== conds[0])) {
    if (node.subgraphs().some(hasRankDependent)) {
      fail(`ranks disagree on the condition (${conds.map((c, r) => `rank ${r}: ${c}`).join(', ')}), but its branches hold collectives; make the condition identical on every rank`);
    }
    return envs.map((env, rank) => runGraph(attr.graph(conds[rank] ? 'then_branch' : 'else_branch'), new Map(env), opset));
  }
  const branch = attr.graph(conds[0] ? 'then_branch' : 'else_branch');
  const local = envs.map((env) => new Map(env));
  simulateGraph(branch, local, mesh, opset, opts);
  return local.map((env) => branch.outputs.map((v) => read(env, v)));
}

/** Runs a local op on every rank, once per distinct tuple of input tensors. */
function runLocal(
  node: Node,
  ins: readonly (readonly (Tensor | undefined)[])[],
  attr: AttrReader,
  fail: (m: string) => never,
  envs: readonly Map<Value, Tensor>[],
  opset: number,
): Tensor[][] {
  const done: { ins: readonly (Tensor | undefined)[]; outs: Tensor[] }[] = [];
  return ins.map((xs, rank) => {
    const same = done.find((d) => d.ins.every((t, k) => t === xs[k]));
    if (same) return same.outs;
    const ctx: RunCtx = {
      node,
      opset,
      numOutputs: node.outputs.length,
      attr,
      fail,
      inputs: xs,
      runSubgraph: (sg) => runGraph(sg, new Map(envs[rank]!), opset),
    };
    const outs = OPS[node.op].run(ctx);
    done.push({ ins: xs, outs });
    return outs;
  });
}

/**
 * Runs the module on simulated ranks and returns the model outputs, after checking that every
 * rank returned the same data for each output (a plan must gather its outputs).
 */
export function runSimulated(m: Module, mesh: Mesh, inputs: readonly Tensor[] | ReadonlyMap<string, Tensor>, opts: SimulateOptions = {}): Tensor[] {
  const all = simulateRanks(m, mesh, inputs, opts);
  const first = all[0]!;
  all.forEach((outs, rank) => {
    outs.forEach((t, k) => {
      const f = first[k]!;
      if (t === f) return;
      const same = t.dtype === f.dtype && t.size === f.size && t.data.every((x, i) => Object.is(x, f.data[i]) || x === f.data[i]);
      if (!same) {
        const name = m.graph.outputs[k]!.name || `output ${k}`;
        throw new IrError('E_RUNTIME', `ranks 0 and ${rank} computed different values for model output '${name}': the plan leaves it sharded; gather it before the output`);
      }
    });
  });
  return first;
}
