/**
 * The interface of a step compiled with First Block Cache (pass `insert-cache-gate`), as a
 * runtime sees it: names of graph inputs and outputs only, so no runtime needs the pass. This file
 * is the one definition of the convention (docs/fbcache.md explains it with an example); the pass
 * builds its inputs and outputs from these names.
 *
 * The step stays one graph. Its extra inputs and outputs:
 *
 *   state (persistent for one generation; zeros at the start of each, so `valid` = false):
 *     fbcache.state.<role>       graph input           fbcache.state.<role>.next   graph output
 *       roles: valid (bool[]: r_ref holds a computed step's residual), cached_run (f32[]:
 *       consecutive cached steps), r_ref (the first block's main-stream residual of the last
 *       computed step), residual.<k> (leaving - entering of the k-th value leaving the cached
 *       region). On simulated ranks (and on GPUs) each rank holds its own shard of the state.
 *   controls (set by the host before each step; no device -> host round trip):
 *     fbcache.threshold    f32[]   cache when diff < threshold; <= 0 never caches
 *     fbcache.must_compute bool[]  compute this step whatever diff says (warm-up steps, last step)
 *     fbcache.max_cached   f32[]   at most this many consecutive cached steps (Infinity: no limit)
 *   reports:
 *     fbcache.cached       bool[]  this step reused the residuals
 *     fbcache.diff         f32[]   mean|r1 - r_ref| / mean|r_ref| (meaningless while valid = false)
 *
 * The gate's `If` node is marked by the attribute `cacheGate = "first_block"` and carries
 * `totalBlocks` and `skippedBlocks` (the blocks a cached step does not run) for cost accounting
 * (CacheGateAttrs). IR-level code finds the gate by that mark (findCacheGate, hasCacheGate), never
 * by value names; the names above are the interface of the compiled step only (plans, runtimes).
 */
import type { AttrValue, Attrs, Graph, Module, Node, Value } from './graph';
import { IrError } from './errors';

export const FBCACHE_PREFIX = 'fbcache.';
export const FBCACHE_STATE_PREFIX = 'fbcache.state.';
export const STATE_NEXT_SUFFIX = '.next';

export const FBCACHE_NAMES = Object.freeze({
  threshold: 'fbcache.threshold',
  mustCompute: 'fbcache.must_compute',
  maxCached: 'fbcache.max_cached',
  cached: 'fbcache.cached',
  diff: 'fbcache.diff',
  valid: 'fbcache.state.valid',
  cachedRun: 'fbcache.state.cached_run',
  rRef: 'fbcache.state.r_ref',
  /** `fbcache.state.residual.<k>` */
  residual: (k: number): string => `fbcache.state.residual.${k}`,
});

/** Attribute names on the gate's If node: `gate` marks it, the counts are for cost accounting. */
export const FBCACHE_IF_ATTRS = Object.freeze({ gate: 'cacheGate', totalBlocks: 'totalBlocks', skippedBlocks: 'skippedBlocks' });

/** The typed attributes of a cache gate's If (beyond its branches). */
export interface CacheGateAttrs {
  /** The caching scheme; the only one is First Block Cache. */
  readonly kind: 'first_block';
  readonly totalBlocks: number;
  /** Blocks a cached step does not run. */
  readonly skippedBlocks: number;
}

/** The attributes that mark an If as the cache gate (merge them with its branches). */
export function cacheGateAttrsFor(a: Omit<CacheGateAttrs, 'kind'>): Attrs {
  return {
    [FBCACHE_IF_ATTRS.gate]: { kind: 'string', value: 'first_block' },
    [FBCACHE_IF_ATTRS.totalBlocks]: { kind: 'int', value: a.totalBlocks },
    [FBCACHE_IF_ATTRS.skippedBlocks]: { kind: 'int', value: a.skippedBlocks },
  };
}

/**
 * The gate attributes of `n`, or undefined when `n` is not a marked cache gate. A marked node with
 * malformed attributes (not an If, a count missing or not an int, an unknown scheme) throws
 * IrError('E_OP') naming the node.
 */
export function cacheGateAttrsOf(n: Node): CacheGateAttrs | undefined {
  const mark = n.attrs[FBCACHE_IF_ATTRS.gate];
  if (mark === undefined) return undefined;
  const bad = (what: string): never => {
    throw new IrError('E_OP', `${n.label}: cache gate ${what}`, n.name);
  };
  if (n.op !== 'If') return bad(`must be an If, got ${n.op}`);
  if (mark.kind !== 'string' || mark.value !== 'first_block') return bad(`attribute '${FBCACHE_IF_ATTRS.gate}' must be "first_block", got ${describeAttr(mark)}`);
  const count = (key: string): number => {
    const a = n.attrs[key];
    return a?.kind === 'int' ? a.value : bad(`attribute '${key}' must be an int, got ${a ? a.kind : 'nothing'}`);
  };
  return { kind: 'first_block', totalBlocks: count(FBCACHE_IF_ATTRS.totalBlocks), skippedBlocks: count(FBCACHE_IF_ATTRS.skippedBlocks) };
}

function describeAttr(a: AttrValue): string {
  return a.kind === 'string' ? `"${a.value}"` : a.kind;
}

/** The cache gate among the nodes of `g` (the gate sits in the step's top-level graph). */
export function findCacheGate(g: Graph): Node | undefined {
  return g.nodes.find((n) => cacheGateAttrsOf(n) !== undefined);
}

/** True when `m` has a cache gate (an If marked `cacheGate`). */
export function hasCacheGate(m: Module): boolean {
  return findCacheGate(m.graph) !== undefined;
}

export interface StatePair {
  /** e.g. 'r_ref', 'residual.0' */
  readonly role: string;
  readonly input: Value;
  readonly output: Value;
  readonly inputIndex: number;
  readonly outputIndex: number;
}

/**
 * Generic persistent state: every graph input X with a graph output named X + '.next'. The
 * First Block Cache state follows this rule; a runtime needs nothing else to carry it.
 */
export function statePairs(m: Module): StatePair[] {
  const outs = new Map<string, number>();
  m.graph.outputs.forEach((v, i) => outs.set(v.name, i));
  const pairs: StatePair[] = [];
  m.graph.inputs.forEach((v, i) => {
    const j = outs.get(v.name + STATE_NEXT_SUFFIX);
    if (v.name && j !== undefined) {
      const role = v.name.startsWith(FBCACHE_STATE_PREFIX) ? v.name.slice(FBCACHE_STATE_PREFIX.length) : v.name;
      pairs.push({ role, input: v, output: m.graph.outputs[j]!, inputIndex: i, outputIndex: j });
    }
  });
  return pairs;
}

export interface FbcacheSignature {
  readonly state: StatePair[];
  readonly threshold: Value;
  readonly mustCompute: Value;
  readonly maxCached: Value;
  readonly cached: Value;
  readonly diff: Value;
  readonly totalBlocks: number;
  readonly skippedBlocks: number;
}

/** The cache interface of `m`, or undefined when `m` has no cache gate. */
export function fbcacheSignature(m: Module): FbcacheSignature | undefined {
  const input = (name: string): Value | undefined => m.graph.inputs.find((v) => v.name === name);
  const output = (name: string): Value | undefined => m.graph.outputs.find((v) => v.name === name);
  const threshold = input(FBCACHE_NAMES.threshold);
  const mustCompute = input(FBCACHE_NAMES.mustCompute);
  const maxCached = input(FBCACHE_NAMES.maxCached);
  const cached = output(FBCACHE_NAMES.cached);
  const diff = output(FBCACHE_NAMES.diff);
  if (!threshold || !mustCompute || !maxCached || !cached || !diff) return undefined;
  const gateNode = findCacheGate(m.graph);
  const gate = gateNode ? cacheGateAttrsOf(gateNode) : undefined;
  return {
    state: statePairs(m).filter((p) => p.input.name.startsWith(FBCACHE_STATE_PREFIX)),
    threshold,
    mustCompute,
    maxCached,
    cached,
    diff,
    totalBlocks: gate?.totalBlocks ?? 0,
    skippedBlocks: gate?.skippedBlocks ?? 0,
  };
}
