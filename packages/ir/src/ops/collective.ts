/**
 * Collective and context-parallel ops (created by the context-parallel passes, never imported).
 * Types are per-rank (local) shapes; every op works on one group of `groupSize` ranks of the
 * mesh axis `meshAxis` (mesh.ts: 'cfg', 'ring', 'ulysses' or 'sp' = ring x ulysses), members
 * ordered by their index along that axis. One attribute vocabulary everywhere: meshAxis,
 * splitAxis, concatAxis, axis, groupSize, shift.
 *
 * Communication and rank-dependent ops (all_to_all, all_gather, all_reduce, ppermute,
 * shard_slice) cannot run on one rank: their `run` fails and names the simulator; their real
 * semantics live in spmd.ts. The token-order ops and the ring-attention kernels (collective-
 * attention.ts) are local and run anywhere.
 */
import type { Dim, TensorType } from '../graph';
import { isFloat } from '../dtype';
import type { CollectiveOp } from './op-kinds';
import type { InferCtx, OpRule, RuleCtx, RunCtx } from './rule';
import { need, normAxis, tensorType } from './rule';
import { fmt } from './nn-kernels';
import { takeAxis } from './collective-kernels';
import { chunkLength, naturalToOrdered, orderedToNatural } from '../placement';
import { attentionLseRule, lseMergeRule } from './collective-attention';

const MESH_AXIS_NAMES = ['cfg', 'ring', 'ulysses', 'sp'];

/** Reads and checks meshAxis and groupSize. */
function readGroup(ctx: RuleCtx): { meshAxis: string; groupSize: number } {
  const meshAxis = ctx.attr.string('meshAxis');
  if (!MESH_AXIS_NAMES.includes(meshAxis)) ctx.fail(`attribute 'meshAxis' must be one of ${MESH_AXIS_NAMES.join(', ')}, got '${meshAxis}'`);
  const groupSize = ctx.attr.int('groupSize');
  if (!Number.isInteger(groupSize) || groupSize < 1) ctx.fail(`attribute 'groupSize' must be a positive integer, got ${groupSize}`);
  return { meshAxis, groupSize };
}

function one(ctx: InferCtx): TensorType {
  if (ctx.inputs.length !== 1) ctx.fail(`takes 1 input, got ${ctx.inputs.length}`);
  return need(ctx, ctx.inputs, 0);
}

function divided(ctx: RuleCtx, shape: readonly Dim[], axis: number, n: number, what: string): Dim {
  const d = shape[axis]!;
  if (typeof d !== 'number') ctx.fail(`${what} axis ${axis} must have a static size, got '${d}'`);
  if (d % n !== 0) ctx.fail(`${what} axis ${axis} of ${fmt(shape)} has size ${d}, not divisible by groupSize ${n}`);
  return d / n;
}

function scaled(shape: readonly Dim[], axis: number, n: number): Dim {
  const d = shape[axis]!;
  return typeof d === 'number' ? d * n : `${d}*${n}`;
}

function withDim(shape: readonly Dim[], axis: number, d: Dim): Dim[] {
  const s = [...shape];
  s[axis] = d;
  return s;
}

function needsSimulator(ctx: RunCtx): never {
  return ctx.fail(
    `is a collective over mesh axis '${ctx.attr.string('meshAxis', '?')}' and needs the other ranks' data (or this rank's mesh ` +
      'coordinates); it cannot run on a single rank: run the module with runSimulated(module, mesh, inputs)',
  );
}

function readSegments(ctx: RuleCtx): { segments: readonly number[]; chunks: number } {
  const segments = ctx.attr.ints('segments');
  const chunks = ctx.attr.int('chunks');
  if (segments.length === 0 || segments.some((s) => !Number.isInteger(s) || s < 1)) ctx.fail(`attribute 'segments' must list positive token counts, got [${segments.join(',')}]`);
  if (!Number.isInteger(chunks) || chunks < 1) ctx.fail(`attribute 'chunks' must be a positive integer, got ${chunks}`);
  return { segments, chunks };
}

const allToAll: OpRule = {
  doc:
    'all_to_all(x) {meshAxis, splitAxis, concatAxis, groupSize}: splits splitAxis into groupSize parts, sends part j to ' +
    'member j, concatenates the received parts along concatAxis in member order (Ulysses: scatter heads, gather sequence); ' +
    'splitAxis = concatAxis keeps the shape (the contiguous chunk exchange plans run after packing)',
  rankDependent: true,
  infer(ctx) {
    const x = one(ctx);
    const { groupSize } = readGroup(ctx);
    const r = x.shape.length;
    const split = normAxis(ctx, ctx.attr.int('splitAxis'), r);
    const concat = normAxis(ctx, ctx.attr.int('concatAxis'), r);
    const s = withDim(x.shape, split, divided(ctx, x.shape, split, groupSize, 'split'));
    if (split === concat) return [tensorType(x.dtype, x.shape)];
    return [tensorType(x.dtype, withDim(s, concat, scaled(x.shape, concat, groupSize)))];
  },
  run: needsSimulator,
};

const allGather: OpRule = {
  doc: 'all_gather(x) {meshAxis, axis, groupSize}: concatenation of every member\'s x along axis, in member order, on every member',
  rankDependent: true,
  infer(ctx) {
    const x = one(ctx);
    const { groupSize } = readGroup(ctx);
    const axis = normAxis(ctx, ctx.attr.int('axis'), x.shape.length);
    return [tensorType(x.dtype, withDim(x.shape, axis, scaled(x.shape, axis, groupSize)))];
  },
  run: needsSimulator,
};

const REDUCTIONS = ['sum', 'mean', 'max'];

const allReduce: OpRule = {
  doc: "all_reduce(x) {meshAxis, reduce: 'sum'|'mean'|'max', groupSize}: elementwise reduction over the group (fp32), on every member",
  rankDependent: true,
  infer(ctx) {
    const x = one(ctx);
    readGroup(ctx);
    const reduce = ctx.attr.string('reduce');
    if (!REDUCTIONS.includes(reduce)) ctx.fail(`attribute 'reduce' must be one of ${REDUCTIONS.join(', ')}, got '${reduce}'`);
    if (!isFloat(x.dtype)) ctx.fail(`x must be a float tensor, got ${x.dtype}`);
    return [tensorType(x.dtype, x.shape)];
  },
  run: needsSimulator,
};

const ppermute: OpRule = {
  doc:
    'ppermute(x) {meshAxis, shift, groupSize, cyclic=1}: cyclic 1: member i sends x to member (i+shift) mod groupSize and receives from (i-shift) mod groupSize (ring send/receive); ' +
    'cyclic 0 (a one-directional halo exchange): member i sends to i+shift only when 0 <= i+shift < groupSize, and a member whose i-shift lies outside the group receives zeros (shift is signed, |shift| < groupSize)',
  rankDependent: true,
  infer(ctx) {
    const x = one(ctx);
    const { groupSize } = readGroup(ctx);
    const shift = ctx.attr.int('shift');
    const cyclic = ctx.attr.int('cyclic', 1);
    if (cyclic !== 0 && cyclic !== 1) ctx.fail(`attribute 'cyclic' must be 0 or 1, got ${cyclic}`);
    if (cyclic === 0 && Math.abs(shift) >= groupSize) ctx.fail(`a non-cyclic ppermute needs |shift| < groupSize (${groupSize}), got shift ${shift}: nothing would be sent`);
    return [tensorType(x.dtype, x.shape)];
  },
  run: needsSimulator,
};

const shardSlice: OpRule = {
  doc:
    'shard_slice(x) {meshAxis, axis, groupSize, shift=0}: member i keeps part (i-shift) mod groupSize of groupSize equal ' +
    'parts of axis (replicated -> sharded with no communication; positional tables, ring-step mask blocks)',
  rankDependent: true,
  infer(ctx) {
    const x = one(ctx);
    const { groupSize } = readGroup(ctx);
    ctx.attr.int('shift', 0);
    const axis = normAxis(ctx, ctx.attr.int('axis'), x.shape.length);
    return [tensorType(x.dtype, withDim(x.shape, axis, divided(ctx, x.shape, axis, groupSize, 'sliced')))];
  },
  run: needsSimulator,
};

const toTokenOrder: OpRule = {
  doc:
    'to_token_order(x) {axis, segments, chunks, fill=0}: natural token order -> rank-chunk order (placement.ts): each ' +
    'segment padded with `fill` to a multiple of chunks, chunk p = part p of every segment; local, no communication',
  infer(ctx) {
    const x = one(ctx);
    const axis = normAxis(ctx, ctx.attr.int('axis'), x.shape.length);
    const { segments, chunks } = readSegments(ctx);
    ctx.attr.float('fill', 0);
    const total = segments.reduce((a, b) => a + b, 0);
    if (x.shape[axis] !== total) ctx.fail(`axis ${axis} of ${fmt(x.shape)} must hold the ${total} tokens of segments [${segments.join(',')}]`);
    return [tensorType(x.dtype, withDim(x.shape, axis, chunks * chunkLength(segments, chunks)))];
  },
  run(ctx) {
    const x = need(ctx, ctx.inputs, 0);
    const axis = normAxis(ctx, ctx.attr.int('axis'), x.rank);
    const { segments, chunks } = readSegments(ctx);
    return [takeAxis(x, axis, orderedToNatural(segments, chunks), ctx.attr.float('fill', 0))];
  },
};

const fromTokenOrder: OpRule = {
  doc: 'from_token_order(x) {axis, segments, chunks}: rank-chunk order -> natural token order, padding dropped; local, no communication',
  infer(ctx) {
    const x = one(ctx);
    const axis = normAxis(ctx, ctx.attr.int('axis'), x.shape.length);
    const { segments, chunks } = readSegments(ctx);
    const ordered = chunks * chunkLength(segments, chunks);
    if (x.shape[axis] !== ordered) ctx.fail(`axis ${axis} of ${fmt(x.shape)} must hold ${ordered} positions (segments [${segments.join(',')}] in ${chunks} chunks)`);
    return [tensorType(x.dtype, withDim(x.shape, axis, segments.reduce((a, b) => a + b, 0)))];
  },
  run(ctx) {
    const x = need(ctx, ctx.inputs, 0);
    const axis = normAxis(ctx, ctx.attr.int('axis'), x.rank);
    const { segments, chunks } = readSegments(ctx);
    return [takeAxis(x, axis, naturalToOrdered(segments, chunks), 0)];
  },
};

export const collectiveRules: { readonly [K in CollectiveOp]: OpRule } = {
  all_to_all: allToAll,
  all_gather: allGather,
  all_reduce: allReduce,
  ppermute,
  shard_slice: shardSlice,
  to_token_order: toTokenOrder,
  from_token_order: fromTokenOrder,
  attention_lse: attentionLseRule,
  lse_merge: lseMergeRule,
};

export function isCollectiveOp(op: string): op is CollectiveOp {
  return Object.prototype.hasOwnProperty.call(collectiveRules, op);
}
