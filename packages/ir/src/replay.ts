/**
 * Type replay: re-runs op rules over an existing (or being-parsed) graph through a scratch
 * GraphBuilder, so the verifier and the parser infer types with exactly the InferCtx and the
 * compile-time value folding the builder uses. Real values map to the scratch values the builder
 * creates; the scratch graph is thrown away.
 *
 * Recorded and re-inferred types are compared up to a consistent renaming of the symbols
 * inference invents (a Reshape's -1 over symbolic dims becomes a fresh symbol, whose name may
 * depend on a per-run counter): an invented symbol may stand for one recorded symbol throughout,
 * while symbols of the recorded types (graph inputs included) must match exactly.
 *
 * Data elided in IR text (content-hash.ts) is never read: elided constants are unknown values,
 * and a node with an elided tensor attribute is inferred with zeros in its place but its outputs
 * are marked unknown, so no folded value is ever made from missing data.
 */
import { GraphBuilder } from './builder';
import type { AddOptions } from './builder';
import type { AttrValue, Attrs, Placement, TensorType, Value } from './graph';
import { tensorType } from './graph';
import type { OpKind } from './ops';
import { Tensor } from './tensor';
import { isElided } from './content-hash';
import { distOf, sameDist } from './placement';

function hasElidedTensor(attrs: Attrs): boolean {
  for (const a of Object.values(attrs)) {
    if (a.kind === 'tensor' && isElided(a.value)) return true;
    if (a.kind === 'tensors' && a.value.some(isElided)) return true;
  }
  return false;
}

function withZeroTensors(attrs: Attrs): Attrs {
  const out: Record<string, AttrValue> = {};
  const zero = (t: Tensor): Tensor => (isElided(t) ? Tensor.zeros(t.dtype, t.shape) : t);
  for (const [k, a] of Object.entries(attrs)) {
    if (a.kind === 'tensor') out[k] = { kind: 'tensor', value: zero(a.value) };
    else if (a.kind === 'tensors') out[k] = { kind: 'tensors', value: a.value.map(zero) };
    else out[k] = a;
  }
  return out;
}

/** A GraphBuilder that never reads elided data (see the file header). */
class ReplayBuilder extends GraphBuilder {
  private readonly opaque = new Set<Value>();

  override valueOf(v: Value): Tensor | undefined {
    if (this.opaque.has(v) || (v.constant && isElided(v.constant))) return undefined;
    return super.valueOf(v);
  }

  override add(op: OpKind | string, inputs: readonly (Value | null | undefined)[], attrs: Attrs = {}, opts: AddOptions = {}): Value[] {
    if (!hasElidedTensor(attrs)) return super.add(op, inputs, attrs, opts);
    const outs = super.add(op, inputs, withZeroTensors(attrs), opts);
    for (const o of outs) this.opaque.add(o);
    return outs;
  }

  /** A fresh value of unknown contents (for operands that failed to resolve or infer). */
  unknown(t: TensorType): Value {
    const v = this.input('', t);
    this.opaque.add(v);
    return v;
  }
}

/** Invented symbol -> recorded symbol, shared by a replay and its subgraph replays. */
class Renaming {
  readonly map = new Map<string, string>();
  /** Symbols of recorded types: real names that no invented symbol may stand in for. */
  readonly recorded = new Set<string>();

  record(t: TensorType): void {
    for (const d of t.shape) if (typeof d === 'string') this.recorded.add(d);
  }
}

/** Re-infers types for one graph; `child()` makes the replay of a subgraph. */
export class TypeReplay {
  private readonly builder: ReplayBuilder;
  private readonly map = new Map<Value, Value>();
  private readonly renaming: Renaming;
  /** Scratch outputs of the node last passed to `infer`, until `bind`. */
  private pending: Value[] = [];

  constructor(
    readonly opset: number,
    private readonly parent?: TypeReplay,
  ) {
    this.builder = new ReplayBuilder(opset, parent?.builder);
    this.renaming = parent?.renaming ?? new Renaming();
  }

  child(): TypeReplay {
    return new TypeReplay(this.opset, this);
  }

  /** Declares a graph input (its contents are unknown at compile time). */
  input(v: Value): void {
    this.renaming.record(v.type);
    this.map.set(v, this.builder.input(v.name, v.type));
  }

  /** An inferred type with invented symbols renamed to the recorded symbols they stand for. */
  rename(t: TensorType): TensorType {
    const map = this.renaming.map;
    if (!t.shape.some((d) => typeof d === 'string' && map.has(d))) return t;
    return tensorType(t.dtype, t.shape.map((d) => (typeof d === 'string' ? (map.get(d) ?? d) : d)), t.placement);
  }

  /**
   * True when an inferred type equals the recorded one: same dtype, same sizes, symbols equal up
   * to the renaming (see the file header), which a match extends. A placement is compared only
   * when the rule inferred one.
   */
  matches(inferred: TensorType, recorded: TensorType): boolean {
    if (inferred.dtype !== recorded.dtype || inferred.shape.length !== recorded.shape.length) return false;
    if (inferred.placement && !samePlacement(inferred.placement, recorded.placement)) return false;
    const { map, recorded: real } = this.renaming;
    const pending = new Map<string, string>();
    for (let i = 0; i < inferred.shape.length; i++) {
      const a = inferred.shape[i]!;
      const b = recorded.shape[i]!;
      if (typeof a === 'number' || typeof b === 'number') {
        if (a !== b) return false;
        continue;
      }
      const bound = map.get(a) ?? pending.get(a);
      if (bound !== undefined) {
        if (bound !== b) return false;
      } else if (a === b || !real.has(a)) pending.set(a, b);
      else return false;
    }
    for (const [a, b] of pending) map.set(a, b);
    this.renaming.record(recorded);
    return true;
  }

  private lookup(v: Value): Value | undefined {
    if (v.constant) return v;
    return this.map.get(v) ?? this.parent?.lookup(v);
  }

  /**
   * Runs the op's rule on the replayed operands and returns the inferred output types. Throws
   * the rule's IrError for invalid operands; call `bindUnknown` for the outputs then.
   */
  infer(op: OpKind, inputs: readonly (Value | null)[], attrs: Attrs, declared: readonly (TensorType | undefined)[], name: string): TensorType[] {
    const ins = inputs.map((v) => (v ? (this.lookup(v) ?? this.builder.unknown(v.type)) : null));
    // `declared` lets inference refine symbolic dims to recorded static sizes, as the importer does.
    const outs = this.builder.add(op, ins, attrs, { name, numOutputs: declared.length, declared });
    this.pending = outs;
    return outs.map((o) => o.type);
  }

  /** Maps the real outputs of the node last passed to `infer` to the inferred scratch values. */
  bind(outputs: readonly Value[]): void {
    outputs.forEach((o, i) => this.map.set(o, this.pending[i] ?? this.builder.unknown(o.type)));
    this.pending = [];
  }

  /** Maps values to fresh unknown values of their own types (after an inference failure). */
  bindUnknown(values: readonly Value[]): void {
    for (const v of values) this.map.set(v, this.builder.unknown(v.type));
    this.pending = [];
  }
}

/** Equal placements in canonical form (placement.ts: absent = replicated). */
export function samePlacement(a: Placement | undefined, b: Placement | undefined): boolean {
  return sameDist(distOf(a), distOf(b));
}
