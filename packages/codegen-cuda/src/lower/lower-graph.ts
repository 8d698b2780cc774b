/**
 * Lowering: partitions a static-shaped, dtype-assigned module into plan instructions over Values.
 *
 * Walks each graph in node order: GEMM-like nodes become `gemm` (gemm.ts), attention nodes a kernel
 * from the attention emitter, `If` a `branch` whose regions are lowered recursively (their results
 * copied into the If's outputs), and every maximal run of other nodes a fragment handed to the
 * fragment emitter (fused kernels plus views). First Block Cache state pairs
 * (`fbcache.state.X` input, `fbcache.state.X.next` output) become state buffers updated by copies at
 * the end of the program; other outputs are io buffers (written in place, or filled by a copy when
 * the value is a view, an input or a constant).
 */
import { Graph, IrError, Module, Node, Value, attrsOf, byteSize, capturedValues, numel } from '@paradit/ir';
import { opsWith } from '@paradit/ir';
import type { OpKind } from '@paradit/ir';
import type { EmitFragment, FragmentLowering } from '../kernel-types';
import { matchGemm } from './gemm';
import { flashSupported, foldableInputTransposes, isAttentionOp, lowerFlashAttention } from './attention';
import { placeConcats } from './concat-in-place';
import type { LAlias, LBranch, LCollective, LGemm, LInstr, LKernel, LShardSlice, LStatePair, LoweredProgram, RefSpec } from './program';
import { originOf } from './program';
import { placeStateInPlace } from './state-in-place';
import { statePairs as runtimeStatePairs } from '@paradit/runtime';
import { coverageError } from './cuda-coverage';
import { emitFp8Dequantize, emitFp8Quantize } from '../kernels/fp8-quantize';

/** Constants with more elements than this are ref inputs (weights-space buffers), not inline text. */
export const REF_INLINE_LIMIT = 64;

export interface LowerOptions {
  readonly emitFragment: EmitFragment;
  /**
   * Lowers one attention node the flash kernel does not take (default: the fragment emitter on a
   * one-node fragment; compile decomposes such nodes before lowering, so this is rare).
   */
  readonly emitAttention?: (node: Node, namePrefix: string) => FragmentLowering;
  /** Use the flash-attention kernel where it applies (default true). */
  readonly flashAttention?: boolean;
}

export function isRefInlineConstant(v: Value): boolean {
  return v.constant !== undefined && numel(v.shape as number[]) <= REF_INLINE_LIMIT;
}

/** The ref of a group of nodes writing `outputs`: its inputs are what the nodes read from outside. */
export function refOf(nodes: readonly Node[], outputs: readonly Value[]): RefSpec {
  const defined = new Set<Value>();
  for (const n of nodes) for (const o of n.outputs) defined.add(o);
  const inputs: Value[] = [];
  const seen = new Set<Value>();
  for (const n of nodes) {
    for (const v of n.inputs) {
      if (!v || defined.has(v) || seen.has(v) || isRefInlineConstant(v)) continue;
      seen.add(v);
      inputs.push(v);
    }
  }
  return { nodes, inputs, outputs };
}

class Lowerer {
  readonly aliases = new Map<Value, LAlias>();
  /** Nodes the fragment emitter could not lower ("Op 'name': why"), all of them (lowerModule throws once). */
  readonly failures: string[] = [];
  private fragments = 0;

  constructor(
    private readonly opts: LowerOptions,
    /** Default-domain opset (the refs concat-in-place.ts builds use it). */
    private readonly opset: number,
  ) {}

  graph(g: Graph): LInstr[] {
    const out: LInstr[] = [];
    const readers = new Map<Value, Node[]>();
    const escaping = new Set<Value>(g.outputs);
    for (const n of g.nodes) {
      for (const v of n.inputs) if (v) readers.set(v, [...(readers.get(v) ?? []), n]);
      for (const sg of n.subgraphs()) for (const v of capturedValues(sg)) escaping.add(v);
    }
    const producers = g.producers();
    const ctx = {
      soleReader: (v: Value): Node | undefined => {
        const r = readers.get(v);
        return r && r.length === 1 && !escaping.has(v) ? r[0] : undefined;
      },
      producer: (v: Value): Node | undefined => producers.get(v),
      readersIfLocal: (v: Value): readonly Node[] | undefined => (escaping.has(v) ? undefined : (readers.get(v) ?? [])),
    };
    const flash = this.opts.flashAttention !== false;
    const attns = g.nodes.filter((n) => isAttentionOp(n.op) && flash && flashSupported(n));
    const folded = foldableInputTransposes(attns, ctx);
    const consumed = new Set<Node>(folded);
    // GEMMs that read a transposed operand take the transpose into their covers: skip those
    // transposes where they appear (they come before the GEMM in node order).
    const gemms = new Map<Node, LGemm>();
    for (const n of g.nodes) {
      const gm = matchGemm(n, ctx);
      if (!gm) continue;
      gemms.set(n, gm);
      for (const c of gm.covers) if (c !== n && c.op === 'Transpose') consumed.add(c);
    }
    // Last-axis Concats of GEMM / attention outputs: the writers store into the Concat's buffer.
    const placed = placeConcats(g.nodes, ctx, gemms, new Set(attns), this.opset);
    for (const [n, gm] of placed.gemms) gemms.set(n, gm);
    placed.consumed.forEach((n) => consumed.add(n));
    placed.aliases.forEach((a, v) => this.aliases.set(v, a));
    let run: Node[] = [];
    const flush = (): void => {
      if (run.length > 0) out.push(...this.fragment(run, readers, escaping));
      run = [];
    };
    for (const n of g.nodes) {
      if (consumed.has(n)) continue;
      const gemm = gemms.get(n);
      if (gemm) {
        flush();
        gemm.covers.forEach((c) => consumed.add(c));
        out.push(gemm);
      } else if (isAttentionOp(n.op) && flash && flashSupported(n)) {
        flush();
        const into = placed.attention.get(n);
        const a = lowerFlashAttention(n, folded, ctx, into);
        a.alsoCovers.forEach((c) => consumed.add(c));
        const ref = into
          ? into.ref(refOf(a.kernel.covers.filter((c) => !into.covers.includes(c)), [a.alsoCovers[0]!.outputs[0]!]))
          : refOf(a.kernel.covers, a.kernel.writes);
        out.push({ op: 'kernel', kernel: a.kernel, ref });
      } else if (n.op === 'attention') {
        flush();
        const emit = this.opts.emitAttention ?? ((node: Node, p: string) => this.opts.emitFragment(new Graph(node.inputs.filter((v): v is Value => v !== null && !v.constant), [node], node.outputs, 'attention'), { namePrefix: p }));
        out.push(...this.take(emit(n, `attn${this.fragments++}`)));
      } else if (n.op === 'quantize_fp8_rows') {
        // fp8 plans: the standalone row-quantize kernel (kernels/fp8-quantize.ts).
        flush();
        out.push(...this.take({ kernels: [emitFp8Quantize(n)], aliases: [] }));
      } else if (n.op === 'dequantize_fp8_rows') {
        // --comm-dtype fp8: the receiving side of an e4m3 collective (kernels/fp8-quantize.ts).
        flush();
        out.push(...this.take({ kernels: [emitFp8Dequantize(n)], aliases: [] }));
      } else if (n.op === 'If') {
        flush();
        out.push(this.branch(n));
      } else if (isPlanCollective(n.op)) {
        flush();
        out.push(lowerCollective(n));
      } else run.push(n);
    }
    flush();
    return out;
  }

  /**
   * A branch: each region's results go to the If's outputs. A result computed in the region (not
   * a view, not an outer value, not returned twice) is written straight into the If output's
   * buffer (a view of it); anything else is copied there at the end of the region.
   */
  private branch(n: Node): LBranch {
    const region = (key: string): LInstr[] => {
      const a = n.attrs[key];
      if (!a || a.kind !== 'graph') throw new IrError('E_UNSUPPORTED', `${n.label}: missing ${key}`, n.name);
      const instrs = this.graph(a.value);
      const own = written(instrs);
      const placed = new Set<Value>();
      a.value.outputs.forEach((v, i) => {
        const dst = n.outputs[i]!;
        if (own.has(v) && !placed.has(v) && !this.aliases.has(v) && v.dtype === dst.dtype) {
          placed.add(v);
          this.aliases.set(v, { of: dst, byteOffset: 0 });
        } else instrs.push({ op: 'copy', src: v, dst, origin: [n.name || 'If'] });
      });
      return instrs;
    };
    return { op: 'branch', cond: n.inputs[0]!, then: region('then_branch'), else: region('else_branch'), node: n };
  }

  private fragment(nodes: Node[], readers: ReadonlyMap<Value, Node[]>, escaping: ReadonlySet<Value>): LInstr[] {
    const inRun = new Set(nodes);
    const defined = new Set<Value>();
    const inputs: Value[] = [];
    const seen = new Set<Value>();
    for (const n of nodes) {
      for (const v of n.inputs) {
        if (!v || v.constant || defined.has(v) || seen.has(v)) continue;
        seen.add(v);
        inputs.push(v);
      }
      for (const o of n.outputs) defined.add(o);
    }
    const outputs = [...defined].filter((v) => escaping.has(v) || (readers.get(v) ?? []).some((r) => !inRun.has(r)));
    if (outputs.length === 0) return [];
    const g = new Graph(inputs, nodes, outputs, 'fragment');
    const prefix = `f${this.fragments++}`;
    try {
      return this.take(this.opts.emitFragment(g, { namePrefix: prefix, opset: this.opset }), g);
    } catch (e) {
      if (!(e instanceof Error) || e.name !== 'CodegenError') throw e;
      this.failures.push(...this.failingNodes(nodes, e));
      return [];
    }
  }

  /** Which nodes of a fragment that failed to emit fail on their own (each as a one-node fragment). */
  private failingNodes(nodes: readonly Node[], first: Error): string[] {
    const out: string[] = [];
    for (const n of nodes) {
      const ins = [...new Set(n.inputs.filter((v): v is Value => !!v && !v.constant))];
      try {
        this.opts.emitFragment(new Graph(ins, [n], n.outputs, 'node'), { namePrefix: 'probe', opset: this.opset });
      } catch (e) {
        if (e instanceof Error && e.name === 'CodegenError') out.push(e.message.replace(/: cannot lower to a CUDA kernel: /, ': '));
        else throw e;
      }
    }
    return out.length ? out : [first.message.replace(/: cannot lower to a CUDA kernel: /, ': ')];
  }

  private take(l: FragmentLowering, fragment?: Graph): LKernel[] {
    for (const a of l.aliases) this.aliases.set(a.value, { of: a.of, byteOffset: a.byteOffset });
    if (!fragment) return l.kernels.map((k) => ({ op: 'kernel', kernel: k, ref: refOf(k.covers, k.writes) }));
    // A kernel's ref must compute its writes from values that exist as buffers. When `covers`
    // leaves out the producer of a write, or a node whose output no kernel writes (it is
    // recomputed inside the kernel), pull the producers in until every ref input is available.
    const producer = fragment.producers();
    const order = new Map(fragment.nodes.map((n, i) => [n, i]));
    const available = new Set<Value>(fragment.inputs);
    for (const k of l.kernels) k.writes.forEach((v) => available.add(v));
    for (const a of l.aliases) available.add(a.value);
    return l.kernels.map((k) => {
      const nodes = new Set(k.covers);
      for (const w of k.writes) {
        const p = producer.get(w);
        if (p) nodes.add(p);
      }
      for (let changed = true; changed; ) {
        changed = false;
        for (const v of refOf([...nodes], k.writes).inputs) {
          const p = producer.get(v);
          if (!available.has(v) && p && !nodes.has(p)) {
            nodes.add(p);
            changed = true;
          }
        }
      }
      const sorted = [...nodes].sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
      return { op: 'kernel' as const, kernel: k, ref: refOf(sorted, k.writes) };
    });
  }

}

const PLAN_COLLECTIVES = opsWith('communicating', 'rankSlice');

function isPlanCollective(op: OpKind): boolean {
  return PLAN_COLLECTIVES.has(op);
}

/**
 * A communicating or rank-dependent node as one plan instruction. lower-collectives.ts already put
 * all_to_all and all_gather in their contiguous forms (exchange along axis 0); anything else here
 * is a compiler bug.
 */
function lowerCollective(n: Node): LCollective | LShardSlice {
  const x = n.inputs[0]!;
  const y = n.outputs[0]!;
  const shape = x.shape as number[];
  const outer = (axis: number): boolean => shape.slice(0, axis).every((d) => d === 1);
  switch (n.op) {
    case 'all_to_all': {
      const { meshAxis, groupSize, splitAxis, concatAxis } = attrsOf(n, 'all_to_all');
      if (splitAxis !== concatAxis || !outer(splitAxis)) throw new Error(`${n.label}: all_to_all is not in contiguous form (run lower-collectives first)`);
      return { op: 'collective', collective: 'all_to_all', meshAxis, groupSize, send: x, recv: y, node: n };
    }
    case 'all_gather': {
      const { meshAxis, groupSize, axis } = attrsOf(n, 'all_gather');
      if (!outer(axis)) throw new Error(`${n.label}: all_gather is not along its outermost axis (run lower-collectives first)`);
      return { op: 'collective', collective: 'all_gather', meshAxis, groupSize, send: x, recv: y, node: n };
    }
    case 'all_reduce': {
      const { meshAxis, groupSize, reduce } = attrsOf(n, 'all_reduce');
      return { op: 'collective', collective: 'all_reduce', meshAxis, groupSize, send: x, recv: y, reduce, node: n };
    }
    case 'ppermute': {
      const { meshAxis, groupSize, shift, cyclic } = attrsOf(n, 'ppermute');
      return { op: 'collective', collective: 'send_recv', meshAxis, groupSize, send: x, recv: y, shift, ...(cyclic === 0 ? { cyclic: false as const } : {}), node: n };
    }
    case 'shard_slice': {
      const { meshAxis, groupSize, axis, shift } = attrsOf(n, 'shard_slice');
      const a = axis < 0 ? axis + shape.length : axis;
      const rows = shape.slice(0, a).reduce((p, d) => p * d, 1);
      const partBytes = (y.shape as number[]).slice(a).reduce((p, d) => p * d, 1) * byteSize(y.dtype);
      return { op: 'shard_slice', meshAxis, groupSize, shift, src: x, dst: y, rows, partBytes, node: n };
    }
    default:
      throw new Error(`${n.label}: not a plan collective`);
  }
}

/** Persistent state: every graph input X with an output X.next (runtime's fbcache-signature rule). */
function statePairs(m: Module): LStatePair[] {
  return runtimeStatePairs(m).map((p) => ({ name: p.input.name, input: p.input, next: p.output }));
}

/** Every value written by an instruction of this list (not its regions' inner values). */
function written(instrs: readonly LInstr[]): Set<Value> {
  const s = new Set<Value>();
  for (const i of instrs) {
    if (i.op === 'kernel') i.kernel.writes.forEach((v) => s.add(v));
    else if (i.op === 'gemm') s.add(i.out.value);
    else if (i.op === 'copy' || i.op === 'shard_slice') s.add(i.dst);
    else if (i.op === 'collective') s.add(i.recv);
    else i.node.outputs.forEach((v) => s.add(v));
  }
  return s;
}

export function lowerModule(m: Module, opts: LowerOptions): LoweredProgram {
  const g = m.graph;
  const l = new Lowerer(opts, m.opsets[''] ?? m.opsets['ai.onnx'] ?? 0);
  const program = l.graph(g);
  const err = coverageError(l.failures);
  if (err) throw err;
  const state = statePairs(m);
  const nextValues = new Set(state.map((p) => p.next));
  const stateNames = new Set(state.map((p) => `${p.name}.next`));
  const owned = written(program);
  const used = new Set<Value>();
  const outputs: { name: string; value: Value }[] = [];
  g.outputs.forEach((v, i) => {
    const name = v.name || `output_${i}`;
    if (stateNames.has(v.name)) return;
    if (owned.has(v) && !used.has(v) && !nextValues.has(v)) {
      used.add(v);
      outputs.push({ name, value: v });
      return;
    }
    const dst = new Value(v.type, name);
    program.push({ op: 'copy', src: v, dst, origin: [`output ${name}`] });
    outputs.push({ name, value: dst });
  });
  for (const p of state) program.push({ op: 'copy', src: p.next, dst: p.input, origin: [`state ${p.name}`] });
  // Branch results that are next state go straight into the state buffer where that is safe.
  placeStateInPlace(program, l.aliases, state);
  const stateInputs = new Set(state.map((p) => p.input));
  return {
    program,
    aliases: l.aliases,
    inputs: g.inputs.filter((v) => !stateInputs.has(v)).map((v) => ({ name: v.name, value: v })),
    outputs,
    state,
    opsets: m.opsets,
  };
}

export function instrOrigin(i: LInstr): string[] {
  if (i.op === 'kernel') return originOf(i.kernel.covers);
  if (i.op === 'gemm') return originOf(i.covers);
  if (i.op === 'copy') return [...i.origin];
  return originOf([i.node]);
}
