/**
 * Tensor sequences that are only a way of spelling Split: the dynamo exporter without its
 * optimizer writes `torch.split` / `chunk` as SplitToSequence followed by SequenceAt at constant
 * positions. The IR has no sequence type, so the importer lowers that pattern to one Split (the
 * sizes are computed from the input's static shape when the split is a chunk size) and each
 * SequenceAt to the Split output it picks. Any other use of a sequence stays unsupported and is
 * listed by scan.ts with the other unsupported ops.
 */
import { IrError } from '../errors';
import type { GraphBuilder } from '../builder';
import type { AttrValue, Value } from '../graph';
import { Tensor } from '../tensor';
import type { GraphP, NodeP } from './proto';

/** Names of SplitToSequence outputs that only SequenceAt nodes of the same graph read. */
export function lowerableSequences(g: GraphP): Set<string> {
  const produced = new Set<string>();
  for (const n of g.node ?? []) if (n.opType === 'SplitToSequence' && !n.domain && n.output?.[0]) produced.add(n.output[0]);
  if (produced.size === 0) return produced;
  const bad = new Set<string>((g.output ?? []).map((o) => o.name ?? ''));
  const visit = (nodes: readonly NodeP[], top: boolean): void => {
    for (const n of nodes) {
      (n.input ?? []).forEach((x, i) => {
        if (!produced.has(x)) return;
        if (!top || n.opType !== 'SequenceAt' || i !== 0) bad.add(x);
      });
      for (const a of n.attribute ?? []) {
        if (a.g) visit(a.g.node ?? [], false);
        for (const sg of a.graphs ?? []) visit(sg.node ?? [], false);
      }
    }
  };
  visit(g.node ?? [], true);
  for (const b of bad) produced.delete(b);
  return produced;
}

interface PendingSplit {
  readonly input: Value;
  readonly split: Value | null;
  readonly axis: number;
  readonly keepdims: boolean;
  readonly name: string;
  outputs?: Value[];
}

/** Collects lowerable SplitToSequence nodes and answers SequenceAt reads of them. */
export class SequenceLowering {
  private readonly pending = new Map<string, PendingSplit>();

  constructor(private readonly lowerable: ReadonlySet<string>) {}

  /** True for the name of a sequence recorded here (it is not in the scope). */
  isPending(name: string): boolean {
    return this.pending.has(name);
  }

  /** True when the node was handled here (SplitToSequence recorded, SequenceAt resolved). */
  handle(n: NodeP, name: string, inputs: readonly (Value | null)[], attrs: Readonly<Record<string, AttrValue>>, builder: GraphBuilder, define: (out: string, v: Value) => void): boolean {
    const op = n.opType ?? '';
    if (op === 'SplitToSequence' && this.lowerable.has(n.output?.[0] ?? '')) {
      const x = inputs[0];
      if (!x) throw new IrError('E_OP', `SplitToSequence '${name}': missing input`, name);
      const axis = attrs['axis']?.kind === 'int' ? attrs['axis'].value : 0;
      const keepdims = attrs['keepdims']?.kind === 'int' ? attrs['keepdims'].value !== 0 : true;
      this.pending.set(n.output![0]!, { input: x, split: inputs[1] ?? null, axis: axis < 0 ? axis + x.shape.length : axis, keepdims, name });
      return true;
    }
    if (op === 'SequenceAt' && this.pending.has(n.input?.[0] ?? '')) {
      const p = this.pending.get(n.input![0]!)!;
      const outs = (p.outputs ??= this.split(p, builder));
      const pos = inputs[1] ? builder.valueOf(inputs[1]) : undefined;
      if (!pos || pos.size !== 1) throw new IrError('E_UNSUPPORTED', `SequenceAt '${name}': the position must be a constant to lower the sequence of SplitToSequence '${p.name}' to a Split`, name);
      let k = pos.data[0]!;
      if (k < 0) k += outs.length;
      if (k < 0 || k >= outs.length) throw new IrError('E_OP', `SequenceAt '${name}': position ${pos.data[0]} is outside the ${outs.length} pieces of SplitToSequence '${p.name}'`, name);
      define(n.output?.[0] ?? '', outs[k]!);
      return true;
    }
    return false;
  }

  private split(p: PendingSplit, builder: GraphBuilder): Value[] {
    const d = p.input.shape[p.axis];
    const fail = (why: string): never => {
      throw new IrError('E_UNSUPPORTED', `SplitToSequence '${p.name}': ${why}; ParaDiT lowers a sequence to a Split and needs the piece sizes at compile time`, p.name);
    };
    const sv = p.split ? builder.valueOf(p.split) : undefined;
    if (p.split && !sv) fail('its split sizes are not constant');
    let sizes: number[];
    if (!sv || sv.rank === 0) {
      if (typeof d !== 'number') fail(`axis ${p.axis} has the symbolic size ${String(d)}`);
      const chunk = sv ? sv.data[0]! : 1;
      if (!(chunk > 0)) fail(`chunk size ${chunk}`);
      sizes = [];
      for (let at = 0; at < (d as number); at += chunk) sizes.push(Math.min(chunk, (d as number) - at));
    } else sizes = Array.from(sv.data);
    const sizesV = builder.constant(Tensor.from('i64', [sizes.length], sizes));
    const axisAttr: AttrValue = { kind: 'int', value: p.axis };
    const outs = builder.opset >= 13
      ? builder.add('Split', [p.input, sizesV], { axis: axisAttr }, { name: p.name, numOutputs: sizes.length })
      : builder.add('Split', [p.input], { axis: axisAttr, split: { kind: 'ints', value: sizes } }, { name: p.name, numOutputs: sizes.length });
    // No split input and keepdims=0: each piece loses the split axis.
    if (!p.split && !p.keepdims) {
      const ax = builder.constant(Tensor.from('i64', [1], [p.axis]));
      return outs.map((o) => (builder.opset >= 13 ? builder.add('Squeeze', [o, ax], {}, { name: `${p.name}/squeeze` })[0]! : builder.add('Squeeze', [o], { axes: { kind: 'ints', value: [p.axis] } }, { name: `${p.name}/squeeze` })[0]!));
    }
    return outs;
  }
}
