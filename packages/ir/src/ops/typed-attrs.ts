/**
 * Typed attributes of ParaDiT's own ops (ops/paradit*.ts) and the context-parallel ops
 * (ops/collective*.ts): `AttrsOf<K>` is what a node of op K carries, with `MeshAxis` for mesh-axis
 * names and string unions for the enumerated strings, and `attrsOf(node, K)` reads and checks a
 * node's attributes into that type (defaults filled in), so a pass or the CUDA lowering never
 * reads `node.attrs['meshAxis']` by hand. The table below is exhaustive over both op groups: a new
 * ParaDiT or collective op does not compile until its attributes are declared here.
 *
 * The op rules (infer/run) keep reading through their AttrReader, whose errors carry the rule's
 * own context; this module is for code that holds an already-built node.
 */
import type { AttrValue, Attrs, Node } from '../graph';
import { IrError } from '../errors';
import { dtypeToOnnx } from '../dtype';
import type { MeshAxis } from '../mesh';
import { isMeshAxis } from '../mesh';
import type { CollectiveOp, ParaditOp } from './op-kinds';

/** The ops with typed attributes. */
export type TypedAttrOp = ParaditOp | CollectiveOp;

type NoAttrs = Readonly<Record<never, never>>;

/** The group a collective works on: `groupSize` ranks along `meshAxis`. */
interface GroupAttrs {
  readonly meshAxis: MeshAxis;
  readonly groupSize: number;
}

interface AttentionAttrs {
  readonly scale: number;
  readonly numHeads: number;
  readonly kvHeads: number;
}

interface TokenOrderAttrs {
  readonly axis: number;
  readonly segments: readonly number[];
  readonly chunks: number;
}

/** Per op, its attributes (the op's doc line in its rule file says what each means). */
interface TypedAttrs {
  readonly attention: AttentionAttrs;
  readonly rms_norm: { readonly eps: number };
  readonly layer_norm: { readonly eps: number };
  readonly gelu: { readonly approximate: 'none' | 'tanh' };
  readonly silu: NoAttrs;
  readonly rope: { readonly style: 'rotate_half' | 'interleaved'; readonly layout: 'BNSH' | 'BSNH' };
  readonly modulate: NoAttrs;
  readonly gated_residual: NoAttrs;
  readonly linear: { readonly transB: number };
  readonly all_to_all: GroupAttrs & { readonly splitAxis: number; readonly concatAxis: number };
  readonly all_gather: GroupAttrs & { readonly axis: number };
  readonly all_reduce: GroupAttrs & { readonly reduce: 'sum' | 'mean' | 'max' };
  /** `cyclic` 0: no wrap-around (members with no source receive zeros; see collective.ts). */
  readonly ppermute: GroupAttrs & { readonly shift: number; readonly cyclic: number };
  readonly shard_slice: GroupAttrs & { readonly axis: number; readonly shift: number };
  readonly to_token_order: TokenOrderAttrs & { readonly fill: number };
  readonly from_token_order: TokenOrderAttrs;
  /** `oDtype`: the ONNX dtype code of the partial output `o`. */
  readonly attention_lse: AttentionAttrs & { readonly oDtype: number };
  readonly lse_merge: NoAttrs;
  readonly quantize_fp8_rows: NoAttrs;
  /** `oDtype`: the ONNX dtype code of the output Y (bf16, f16 or f32). */
  readonly linear_fp8: { readonly transB: number; readonly oDtype: number };
  /** `oDtype`: the ONNX dtype code of the output y (bf16, f16 or f32). */
  readonly dequantize_fp8_rows: { readonly oDtype: number };
}

/** The attributes of a node of op K (what attrsOf returns: defaults filled in). */
export type AttrsOf<K extends TypedAttrOp> = TypedAttrs[K];

/** Attributes to create a node of op K with (attrsFor): those with a default may be left out. */
export type AttrsInit<K extends TypedAttrOp> = { readonly [P in keyof TypedAttrs[K] as P extends DefaultedKey<K> ? never : P]: TypedAttrs[K][P] } & {
  readonly [P in keyof TypedAttrs[K] as P extends DefaultedKey<K> ? P : never]?: TypedAttrs[K][P];
};

/** The attributes of op K that have a default in the schema. */
type DefaultedKey<K extends TypedAttrOp> = {
  [P in keyof TypedAttrs[K]]: P extends keyof (typeof SCHEMAS)[K] ? ((typeof SCHEMAS)[K][P] extends { readonly default: unknown } ? P : never) : never;
}[keyof TypedAttrs[K]];

/** How one attribute is stored; the kind is tied to the field's TypeScript type. */
type Field<T> = [T] extends [MeshAxis]
  ? { readonly kind: 'meshAxis' }
  : [T] extends [number]
    ? { readonly kind: 'int' | 'float'; readonly default?: number }
    : [T] extends [readonly number[]]
      ? { readonly kind: 'ints' }
      : [T] extends [string]
        ? { readonly kind: 'string'; readonly oneOf: readonly T[]; readonly default?: T }
        : never;

type Schema<A> = { readonly [P in keyof A]-?: Field<A[P]> };

const INT = { kind: 'int' } as const;
const FLOAT = { kind: 'float' } as const;
const INTS = { kind: 'ints' } as const;
const GROUP: Schema<GroupAttrs> = { meshAxis: { kind: 'meshAxis' }, groupSize: INT };
const ATTENTION: Schema<AttentionAttrs> = { scale: FLOAT, numHeads: INT, kvHeads: INT };
const TOKEN_ORDER: Schema<TokenOrderAttrs> = { axis: INT, segments: INTS, chunks: INT };

/** Every typed op's attributes; keys must equal TypedAttrOp (checked by the type). */
const SCHEMAS = {
  attention: ATTENTION,
  rms_norm: { eps: FLOAT },
  layer_norm: { eps: FLOAT },
  gelu: { approximate: { kind: 'string', oneOf: ['none', 'tanh'], default: 'none' } },
  silu: {},
  rope: { style: { kind: 'string', oneOf: ['rotate_half', 'interleaved'] }, layout: { kind: 'string', oneOf: ['BNSH', 'BSNH'] } },
  modulate: {},
  gated_residual: {},
  linear: { transB: { kind: 'int', default: 0 } },
  all_to_all: { ...GROUP, splitAxis: INT, concatAxis: INT },
  all_gather: { ...GROUP, axis: INT },
  all_reduce: { ...GROUP, reduce: { kind: 'string', oneOf: ['sum', 'mean', 'max'] } },
  ppermute: { ...GROUP, shift: INT, cyclic: { kind: 'int', default: 1 } },
  shard_slice: { ...GROUP, axis: INT, shift: { kind: 'int', default: 0 } },
  to_token_order: { ...TOKEN_ORDER, fill: { kind: 'float', default: 0 } },
  from_token_order: TOKEN_ORDER,
  attention_lse: { ...ATTENTION, oDtype: { kind: 'int', default: dtypeToOnnx('f32') } },
  lse_merge: {},
  quantize_fp8_rows: {},
  linear_fp8: { transB: { kind: 'int', default: 1 }, oDtype: { kind: 'int', default: dtypeToOnnx('bf16') } },
  dequantize_fp8_rows: { oDtype: { kind: 'int', default: dtypeToOnnx('bf16') } },
} satisfies { readonly [K in TypedAttrOp]: Schema<TypedAttrs[K]> };

type AnyField = { readonly kind: 'meshAxis' | 'int' | 'float' | 'ints' | 'string'; readonly default?: unknown; readonly oneOf?: readonly string[] };

function readField(n: Node, name: string, f: AnyField, a: AttrValue | undefined): unknown {
  const bad = (expected: string, got: string): never => {
    throw new IrError('E_OP', `${n.label}: attribute '${name}' must be ${expected}, got ${got}`, n.name);
  };
  if (a === undefined) {
    if (f.default !== undefined) return f.default;
    throw new IrError('E_OP', `${n.label}: missing attribute '${name}' (${f.kind === 'meshAxis' ? 'a mesh axis' : f.kind})`, n.name);
  }
  switch (f.kind) {
    case 'int':
      return a.kind === 'int' ? a.value : bad('an int', a.kind);
    case 'float':
      // Lenient like AttrReader.float: some writers store 1 for 1.0.
      return a.kind === 'float' || a.kind === 'int' ? a.value : bad('a float', a.kind);
    case 'ints':
      return a.kind === 'ints' ? a.value : bad('ints', a.kind);
    case 'meshAxis':
      if (a.kind !== 'string') return bad('a mesh axis (cfg, ring, ulysses or sp)', a.kind);
      return isMeshAxis(a.value) ? a.value : bad('a mesh axis (cfg, ring, ulysses or sp)', `'${a.value}'`);
    case 'string': {
      const oneOf = f.oneOf ?? [];
      if (a.kind !== 'string') return bad(`one of ${oneOf.join(', ')}`, a.kind);
      return oneOf.includes(a.value) ? a.value : bad(`one of ${oneOf.join(', ')}`, `'${a.value}'`);
    }
  }
}

/**
 * The typed attributes of `n`, which must be a node of op `op`: every declared attribute read and
 * checked (kind, mesh axis, enumerated strings), defaults filled in. Throws IrError('E_OP') naming
 * the node and the attribute otherwise.
 */
export function attrsOf<K extends TypedAttrOp>(n: Node, op: K): AttrsOf<K> {
  if (n.op !== op) throw new IrError('E_OP', `${n.label}: expected a ${op} node, got ${n.op}`, n.name);
  const schema = SCHEMAS[op] as Readonly<Record<string, AnyField>>;
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(schema)) out[name] = readField(n, name, f, n.attrs[name]);
  return out as AttrsOf<K>;
}

/** Whether `op` has typed attributes (a ParaDiT or collective op). */
export function hasTypedAttrs(op: string): op is TypedAttrOp {
  return Object.prototype.hasOwnProperty.call(SCHEMAS, op);
}

/** The mesh axis and group of a collective node (any op whose attributes include them). */
export function collectiveGroupOf(n: Node): GroupAttrs {
  const { meshAxis, groupSize } = GROUP;
  return { meshAxis: readField(n, 'meshAxis', meshAxis, n.attrs['meshAxis']) as MeshAxis, groupSize: readField(n, 'groupSize', groupSize, n.attrs['groupSize']) as number };
}

/**
 * The Attrs to create a node of op `op` with, from typed values (mesh axes and enumerated strings
 * are checked by the type; left-out defaulted attributes are not written).
 */
export function attrsFor<K extends TypedAttrOp>(op: K, a: AttrsInit<K>): Attrs {
  const schema = SCHEMAS[op] as Readonly<Record<string, AnyField>>;
  const given = a as Readonly<Record<string, unknown>>;
  const out: Record<string, AttrValue> = {};
  for (const [name, f] of Object.entries(schema)) {
    const v = given[name];
    if (v === undefined) continue;
    if (f.kind === 'ints') out[name] = { kind: 'ints', value: [...(v as readonly number[])] };
    else if (f.kind === 'int' || f.kind === 'float') out[name] = { kind: f.kind, value: v as number };
    else out[name] = { kind: 'string', value: v as string };
  }
  return out;
}
