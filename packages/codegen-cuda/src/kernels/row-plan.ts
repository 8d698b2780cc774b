/**
 * A row kernel's plan: a row-wise op over the last axis of its domain ([...rows, L]), computed by
 * T threads per row with the row in registers (K chunks of V lanes per thread). Its input is a
 * lazy expression (the fused prologue); sinks that read its output become its epilogue.
 */
import type { DType, Node, Value } from '@paradit/ir';
import type { Expr } from './expr';
import { freshId } from './expr';

export type RowOp =
  | 'rms_norm' | 'layer_norm' | 'softmax' | 'log_softmax'
  | 'sum' | 'mean' | 'max' | 'min' | 'sumsq' | 'l1' | 'l2' | 'prod';

const REDUCING: ReadonlySet<RowOp> = new Set(['sum', 'mean', 'max', 'min', 'sumsq', 'l1', 'l2', 'prod']);

/** Most registers a thread may hold for one row (K * V floats). */
const MAX_ROW_REGS = 64;

export class RowPlan {
  readonly id = freshId();
  readonly L: number;
  readonly V: number;
  readonly T: number;
  readonly K: number;
  constructor(
    readonly op: RowOp,
    public input: Expr,
    public weight: Expr | undefined,
    public bias: Expr | undefined,
    readonly eps: number,
    /** The IR value this row op defines; the kernel writes it when anything reads it raw. */
    readonly outValue: Value,
    readonly outDtype: DType,
    readonly nodes: Node[],
  ) {
    const shape = input.shape;
    this.L = shape.length ? shape[shape.length - 1]! : 1;
    let v = input.dtype === 'f32' ? 4 : input.dtype === 'f16' || input.dtype === 'bf16' ? 8 : 1;
    while (v > 1 && this.L % v !== 0) v >>= 1;
    this.V = v;
    const C = Math.ceil(this.L / v);
    this.T = chooseThreads(C);
    this.K = Math.ceil(C / this.T);
  }

  get shape(): readonly number[] {
    return this.input.shape;
  }

  get reduces(): boolean {
    return REDUCING.has(this.op);
  }

  get rows(): number {
    return this.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  }

  /** Fits in registers: otherwise reductions go to the loop kernel and norms are refused. */
  static fits(L: number): boolean {
    return L <= 1024 * MAX_ROW_REGS;
  }
}

const pow2ceil = (n: number): number => (n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n)));

/** Threads per row: about 2 chunks per thread for short rows (head-dim norms), 3-4 for long ones. */
function chooseThreads(C: number): number {
  if (C <= 64) return Math.min(32, pow2ceil(Math.ceil(C / 2)));
  return Math.min(1024, Math.max(32, pow2ceil(Math.ceil(C / 4))));
}
