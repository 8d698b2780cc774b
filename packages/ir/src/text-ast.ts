/**
 * Syntax tree of the IR text form: what text-syntax.ts reads and parser.ts turns into IR. Data and
 * non-graph attributes are already decoded (tensors, AttrValues); value labels are unresolved.
 */
import type { AttrValue, TensorType } from './graph';
import type { Tensor } from './tensor';

export interface Pos {
  readonly line: number;
  readonly col: number;
}

export interface RefAst {
  readonly label: string;
  readonly pos: Pos;
}

export interface ParamAst extends RefAst {
  readonly type: TensorType;
}

export type ConstDataAst = { readonly kind: 'tensor'; readonly tensor: Tensor } | { readonly kind: 'elided'; readonly hash: string };

export interface ConstAst extends RefAst {
  readonly kind: 'const';
  readonly type: TensorType;
  readonly data: ConstDataAst;
  readonly hint: string | undefined;
}

export type AttrAst =
  | { readonly kind: 'value'; readonly value: AttrValue }
  | { readonly kind: 'graph'; readonly graph: GraphAst }
  | { readonly kind: 'graphs'; readonly graphs: readonly GraphAst[] };

export interface NodeAst {
  readonly kind: 'node';
  readonly pos: Pos;
  readonly labels: readonly RefAst[];
  readonly op: string;
  readonly opPos: Pos;
  readonly args: readonly (RefAst | null)[];
  readonly attrs: ReadonlyMap<string, AttrAst>;
  /** Written output types, or undefined when left out. */
  readonly types: readonly TensorType[] | undefined;
  readonly typesPos: Pos;
  readonly hint: string | undefined;
}

export interface GraphAst {
  readonly name: string;
  readonly pos: Pos;
  readonly params: readonly ParamAst[];
  readonly body: readonly (ConstAst | NodeAst)[];
  readonly returns: readonly RefAst[];
  readonly headerHint: string | undefined;
  readonly returnHint: string | undefined;
}

export interface ModuleAst {
  /** Undefined for a bare graph (the caller picks the opset). */
  readonly opsets: Readonly<Record<string, number>> | undefined;
  readonly graph: GraphAst;
}
