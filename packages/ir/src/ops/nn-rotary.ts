/**
 * RotaryEmbedding (ONNX opset 23): rotates the first `rotary_embedding_dim` (default: all) channels
 * of every head by position-dependent angles.
 *
 * Shape letters: B batch, S sequence, N heads, H head dim, R = rotary_embedding_dim, M max position.
 * X is [B,N,S,H] or [B,S,N*H] (3-D needs num_heads). cos_cache/sin_cache are [M, R/2] when
 * position_ids [B,S] picks the rows, else [B,S,R/2] (or [S,R/2], shared by the batch).
 * Pairs are (x[i], x[i + R/2]) (halves) or (x[2i], x[2i+1]) with interleaved=1:
 *   x1' = cos*x1 - sin*x2,  x2' = sin*x1 + cos*x2.  Channels past R pass through.
 */
import type { Dim, TensorType } from '../graph';
import { isInteger } from '../dtype';
import type { Tensor } from '../tensor';
import type { InferCtx, OpRule, RunCtx } from './rule';
import { need, sameDtype, tensorType } from './rule';
import { alloc, finish, fmt, requireFloat } from './nn-kernels';

interface RotaryPlan {
  readonly B: Dim;
  readonly S: Dim;
  readonly N: number;
  readonly H: number;
  readonly R: number;
}

function planRotary(ctx: InferCtx | RunCtx, x: readonly Dim[], cos: readonly Dim[], sin: readonly Dim[], pos?: readonly Dim[]): RotaryPlan {
  let B: Dim, S: Dim, N: number, H: number;
  if (x.length === 4) {
    [B, S] = [x[0]!, x[2]!];
    if (typeof x[1] !== 'number' || typeof x[3] !== 'number') ctx.fail(`X ${fmt(x)} needs static heads and head size`);
    N = x[1];
    H = x[3];
  } else if (x.length === 3) {
    [B, S] = [x[0]!, x[1]!];
    N = ctx.attr.int('num_heads', 0);
    if (N < 1) ctx.fail(`3-D X ${fmt(x)} needs the num_heads attribute`);
    const hidden = x[2]!;
    if (typeof hidden !== 'number' || hidden % N !== 0) ctx.fail(`X's hidden size ${hidden} must be static and divisible by num_heads ${N}`);
    H = hidden / N;
  } else {
    return ctx.fail(`X must be [B,N,S,H] or [B,S,N*H], got ${fmt(x)}`);
  }
  const R = ctx.attr.int('rotary_embedding_dim', 0) || H;
  if (R > H || R % 2 !== 0) ctx.fail(`rotary_embedding_dim ${R} must be even and at most the head size ${H}`);
  const half = R / 2;
  const want = pos ? `[max_position, ${half}]` : `[B, S, ${half}] or [S, ${half}]`;
  for (const [name, c] of [['cos_cache', cos], ['sin_cache', sin]] as const) {
    const okRank = pos ? c.length === 2 : c.length === 3 || c.length === 2;
    const last = c[c.length - 1];
    if (!okRank || (typeof last === 'number' && last !== half)) ctx.fail(`${name} must be ${want}, got ${fmt(c)}`);
  }
  if (pos && (pos.length !== 2 || (typeof pos[1] === 'number' && typeof S === 'number' && pos[1] !== S))) {
    ctx.fail(`position_ids must be [B, S] = ${fmt([B, S])}, got ${fmt(pos)}`);
  }
  return { B, S, N, H, R };
}

function rotaryRun(ctx: RunCtx): Tensor[] {
  const X = need(ctx, ctx.inputs, 0);
  const cos = need(ctx, ctx.inputs, 1);
  const sin = need(ctx, ctx.inputs, 2);
  const pos = ctx.inputs[3];
  const p = planRotary(ctx, X.shape, cos.shape, sin.shape, pos?.shape);
  const [B, S] = [p.B, p.S] as [number, number];
  const { N, H, R } = p;
  const half = R / 2;
  const interleaved = ctx.attr.int('interleaved', 0) !== 0;
  const x = X.data;
  const y = alloc(X.dtype, X.shape);
  y.set(x); // channels past R pass through
  const maxPos = cos.shape[0]!;
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < S; s++) {
      let row: number;
      if (pos) {
        row = pos.data[(pos.shape[0] === 1 ? 0 : b) * S + s]!;
        if (row < 0 || row >= maxPos) ctx.fail(`position_ids value ${row} is outside the cache's ${maxPos} rows`);
      } else {
        row = cos.rank === 3 ? b * S + s : s;
      }
      const c0 = row * half;
      for (let n = 0; n < N; n++) {
        const base = X.rank === 4 ? ((b * N + n) * S + s) * H : ((b * S + s) * N + n) * H;
        for (let i = 0; i < half; i++) {
          const i1 = interleaved ? base + 2 * i : base + i;
          const i2 = interleaved ? i1 + 1 : i1 + half;
          const c = cos.data[c0 + i]!;
          const sn = sin.data[c0 + i]!;
          const x1 = x[i1]!;
          const x2 = x[i2]!;
          y[i1] = c * x1 - sn * x2;
          y[i2] = sn * x1 + c * x2;
        }
      }
    }
  }
  return [finish(X.dtype, X.shape, y)];
}

export const rotaryRules: { readonly RotaryEmbedding: OpRule } = {
  RotaryEmbedding: {
    doc: 'RotaryEmbedding(X[B,N,S,H]|[B,S,N*H], cos_cache, sin_cache, position_ids?) {interleaved, rotary_embedding_dim, num_heads}: rotary position embedding (see file header).',
    infer(ctx) {
      const x = need(ctx, ctx.inputs, 0);
      const cos = need(ctx, ctx.inputs, 1);
      const sin = need(ctx, ctx.inputs, 2);
      const dtype = sameDtype(ctx, [x, cos, sin]);
      requireFloat(ctx, dtype, 'X');
      const pos: TensorType | undefined = ctx.inputs[3];
      if (pos && !isInteger(pos.dtype)) ctx.fail(`position_ids must be an integer tensor, got ${pos.dtype}`);
      planRotary(ctx, x.shape, cos.shape, sin.shape, pos?.shape);
      return [tensorType(dtype, x.shape)];
    },
    run: rotaryRun,
  },
};
