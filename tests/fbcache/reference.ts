/**
 * An independent First Block Cache loop for the tiny DiT (tests/models/tiny-dit.ts): it runs the
 * ORIGINAL, unfused module with the reference interpreter and applies the semantics by
 * hand to intermediate values, without the pass, block discovery or the runtime loop.
 *
 * The tiny DiT's stream is found from its spelling: x0 = the Concat(text, image) on axis 1, and
 * each residual add `x = Add(x, Mul(gate, ...))` takes the current x as its first input; two per
 * block. A cached step's output comes from the same module with the last block's output replaced
 * by an extra input (the head then runs on entering + residual).
 */
import { Graph, Module, Node, Tensor, Value, interpret, updateNode } from '@paradit/ir';

export interface RefOptions {
  readonly steps: number;
  readonly threshold: number;
  readonly warmup?: number;
  readonly maxCached?: number;
  readonly computeLastStep?: boolean;
}

export interface RefResult {
  readonly cached: boolean[];
  readonly diffs: (number | null)[];
  readonly latents: Tensor;
}

/** The stream values of the tiny DiT: [x0, after residual 1, after residual 2, ...]. */
export function tinyDitStream(g: Graph): Value[] {
  const concat = g.nodes.find((n) => n.op === 'Concat' && n.attrs.axis?.kind === 'int' && n.attrs.axis.value === 1);
  if (!concat) throw new Error('no Concat on axis 1: not the tiny DiT');
  const xs = [concat.outputs[0]!];
  for (;;) {
    const x = xs[xs.length - 1]!;
    const next = g.nodes.find((n) => n.op === 'Add' && n.inputs[0] === x && g.nodes.some((p) => p.op === 'Mul' && p.outputs[0] === n.inputs[1]));
    if (!next) return xs;
    xs.push(next.outputs[0]!);
  }
}

/** `m` with every read of `v` reading a new graph input `name` instead. */
function overriding(m: Module, v: Value, name: string): Module {
  const x = new Value(v.type, name);
  const nodes = m.graph.nodes.map((n) => (n.inputs.includes(v) ? updateNode(n, { inputs: n.inputs.map((i) => (i === v ? x : i)) }) : n));
  return m.withGraph(new Graph([...m.graph.inputs, x], nodes, m.graph.outputs, m.graph.name));
}

const sub = (a: Tensor, b: Tensor): Float64Array => Float64Array.from(a.data, (x, i) => Math.fround(x - b.data[i]!));
const meanAbs = (a: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]!);
  return s / a.length;
};

export function referenceLoop(m: Module, inputs: ReadonlyMap<string, Tensor>, blocks: number, o: RefOptions): RefResult {
  const xs = tinyDitStream(m.graph);
  if (xs.length !== 2 * blocks + 1) throw new Error(`expected ${2 * blocks} residual adds, found ${xs.length - 1}`);
  const [xIn, xOut, xLast] = [xs[0]!, xs[2]!, xs[2 * blocks]!];
  const head = overriding(m, xLast, 'x_last_override');
  const N = o.steps;
  let x = inputs.get('hidden_states')!;
  const t = inputs.get('timestep')!;
  let rRef: Float64Array | undefined;
  let residual: Float64Array | undefined;
  let run = 0;
  const cached: boolean[] = [];
  const diffs: (number | null)[] = [];
  for (let i = 0; i < N; i++) {
    const sigma = Math.fround(1 - i / N);
    const sigmaNext = i + 1 === N ? 0 : Math.fround(1 - (i + 1) / N);
    const ins = new Map(inputs);
    ins.set('hidden_states', x);
    ins.set('timestep', Tensor.from('f32', t.shape, new Array<number>(t.size).fill(sigma)));
    const seen = new Map<Value, Tensor>();
    const out = interpret(m, ins, { onNode: (n, outs) => n.outputs.forEach((v, k) => [xIn, xOut, xLast].includes(v) && seen.set(v, outs[k]!)) })[0]!;
    const r1 = sub(seen.get(xOut)!, seen.get(xIn)!);
    const diff = rRef ? meanAbs(sub(new Tensor('f64', [r1.length], r1), new Tensor('f64', [rRef.length], rRef))) / meanAbs(rRef) : null;
    const must = i < (o.warmup ?? 0) || (o.computeLastStep === true && i === N - 1);
    const isCached = diff !== null && !must && o.threshold > 0 && run < (o.maxCached ?? Infinity) && diff < o.threshold;
    let v: Tensor;
    if (isCached) {
      const entering = seen.get(xOut)!;
      const leaving = new Float32Array(entering.size);
      for (let k = 0; k < leaving.length; k++) leaving[k] = Math.fround(entering.data[k]! + residual![k]!);
      v = interpret(head, new Map([...ins, ['x_last_override', new Tensor('f32', entering.shape, leaving)]]))[0]!;
      run++;
    } else {
      v = out;
      rRef = r1;
      residual = sub(seen.get(xLast)!, seen.get(xOut)!);
      run = 0;
    }
    cached.push(isCached);
    diffs.push(diff);
    const dt = Math.fround(sigmaNext - sigma);
    x = new Tensor('f32', x.shape, Float32Array.from(x.data, (xi, k) => Math.fround(xi + Math.fround(dt * v.data[k]!))));
  }
  return { cached, diffs, latents: x };
}

/** Relative L2 distance ||a - b|| / ||b||: the one harness's. */
export { relL2 } from '../support/harness';

/**
 * A threshold that gives both outcomes in the reference run and stays at least `margin` away
 * from every diff it sees (so fp rounding differences cannot flip a decision).
 */
export function mixedThreshold(run: (threshold: number) => RefResult, candidates: readonly number[], margin = 2e-3): { threshold: number; ref: RefResult } {
  for (const threshold of candidates) {
    const ref = run(threshold);
    const both = ref.cached.includes(true) && ref.cached.slice(1).includes(false);
    const clear = ref.diffs.every((d) => d === null || Math.abs(d - threshold) > margin);
    if (both && clear) return { threshold, ref };
  }
  throw new Error(`no threshold among ${candidates.join(', ')} gives both cached and computed steps`);
}
