/**
 * Flash-attention forward kernel generator for Hopper (sm_90a): the contract with the lowering.
 *
 * Shape letters: B batch, N heads (Nkv key/value heads, N % Nkv == 0), Sq / Skv query / key lengths,
 * H head dim of Q and K, Hv head dim of V and O.
 *   O[b, n, s, :]   = softmax_k(scale * Q[b,n,s,:] . K[b,n/(N/Nkv),k,:] + mask[b,n,s,k]) V[b,n/(N/Nkv),k,:]
 *   lse[b, n, s]    = ln sum_k exp(scale * Q.K + mask)       (natural log, fp32, [B, N, Sq] contiguous)
 * Rows whose every key is masked give O = 0 and lse = -inf. A bool mask keeps the keys where it is
 * true (PyTorch / ONNX semantics). Q, K, V, O are addressed through (batch, head, sequence) strides
 * in elements with the head-dim axis contiguous, so transposes around attention fold into strides
 * (e.g. Q read straight out of a [B, S, N*H] projection: strides {b: S*N*H, h: H, s: N*H}). The mask
 * has (b, n, q, k) strides, any of which may be 0 (broadcast).
 *
 * Requirements checked here: H, Hv in {64, 128}; q/k/v/o strides multiples of 8 elements (16-byte
 * rows); scale > 0 and finite for the unmasked kernel. Not checked (the caller's duty): q, k, v, o
 * pointers 16-byte aligned; mask/lse pointers aligned to their element size.
 * The kernel is one shape for every spec (see attention/kernel.ts): wgmma + cp.async, warp-specialized.
 * No TMA tensor maps: every argument is a plain pointer or scalar.
 * Measured (H100 SXM, B=1, N=24, S=4608, H=128, bf16): ~570 TFLOP/s, torch SDPA ~620 in the same run;
 * numbers per spec and the history of each change are in docs/perf-notes.md ("Attention kernel").
 */
import { CodegenError } from './codegen-error';
import { renderHelpers } from './attention/ptx';
import { renderKernel } from './attention/kernel';
import {
  kernelShape,
  smemFits,
  type AttentionMaskKind,
  type AttentionSpec,
  type AttentionTuning,
  type KernelShape,
} from './attention/shape';

export type { AttentionDtype, AttentionMaskKind, AttentionSpec, AttentionTuning } from './attention/shape';

type Dim3Tuple = [number, number, number];

/** Strides in elements of a [batch, heads, seq, headDim] view (headDim contiguous). */
export interface SeqStrides {
  readonly b: number;
  readonly h: number;
  readonly s: number;
}

/** Strides in elements of the mask's [batch, heads, sq, skv] view; 0 broadcasts. */
interface MaskStrides {
  readonly b: number;
  readonly h: number;
  readonly q: number;
  readonly k: number;
}

export interface AttentionLaunch {
  readonly batch: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly sq: number;
  readonly skv: number;
  readonly scale: number;
  readonly q: SeqStrides;
  readonly k: SeqStrides;
  readonly v: SeqStrides;
  readonly o: SeqStrides;
  /** Required exactly when the spec has a mask. */
  readonly mask?: MaskStrides;
}

type AttentionPtrName = 'q' | 'k' | 'v' | 'o' | 'mask' | 'lse';

type AttentionArg =
  | { readonly kind: 'ptr'; readonly name: AttentionPtrName }
  | { readonly kind: 'i32' | 'i64' | 'f32'; readonly v: number };

interface AttentionKernel {
  /** extern "C" __global__ name. */
  readonly entry: string;
  /** Self-contained CUDA C++ (includes cuda_bf16.h and cuda_fp16.h only); nvcc and NVRTC. */
  readonly source: string;
  readonly block: Dim3Tuple;
  /** Dynamic shared memory in bytes (> 48 KiB: raise the function's limit before launch). */
  readonly smem: number;
  grid(b: { readonly batch: number; readonly heads: number; readonly sq: number }): Dim3Tuple;
  /** Kernel arguments in parameter order; throws AttentionError on launches the kernel cannot run. */
  args(p: AttentionLaunch): AttentionArg[];
}

/** A spec or launch the kernel cannot serve; a CodegenError (code E_CODEGEN) so the CLI reports it. */
export class AttentionError extends CodegenError {
  constructor(message: string) {
    super(message);
    this.name = 'AttentionError';
  }
}

const HEAD_DIMS: readonly number[] = [64, 128];
const MASKS: readonly AttentionMaskKind[] = ['none', 'additive-f32', 'additive-bf16', 'additive-f16', 'bool'];

function checkSpec(spec: AttentionSpec): void {
  const where = `attention kernel (dtype ${String(spec.dtype)}, headDim ${spec.headDim}, mask ${String(spec.mask)})`;
  if (spec.dtype !== 'bf16' && spec.dtype !== 'f16') {
    throw new AttentionError(`${where}: expected dtype 'bf16' or 'f16', got '${String(spec.dtype)}'; cast to one of them.`);
  }
  if (!HEAD_DIMS.includes(spec.headDim)) {
    throw new AttentionError(`${where}: expected headDim 64 or 128, got ${spec.headDim}; pad the head dim to 64 or 128.`);
  }
  const dv = spec.headDimV ?? spec.headDim;
  if (!HEAD_DIMS.includes(dv)) {
    throw new AttentionError(`${where}: expected headDimV 64 or 128, got ${dv}; pad V's head dim to 64 or 128.`);
  }
  if (!MASKS.includes(spec.mask)) {
    throw new AttentionError(`${where}: expected mask one of ${MASKS.join(', ')}, got '${String(spec.mask)}'.`);
  }
}

function isInt(x: number): boolean {
  return Number.isSafeInteger(x);
}

function checkLaunch(shape: KernelShape, p: AttentionLaunch): void {
  const where = `attention launch '${shape.entry}'`;
  for (const [name, x] of [['batch', p.batch], ['heads', p.heads], ['kvHeads', p.kvHeads]] as const) {
    if (!isInt(x) || x < 1) throw new AttentionError(`${where}: expected ${name} >= 1, got ${x}.`);
  }
  for (const [name, x] of [['sq', p.sq], ['skv', p.skv]] as const) {
    if (!isInt(x) || x < 0 || x > 0x7fffffff) throw new AttentionError(`${where}: expected 0 <= ${name} < 2^31, got ${x}.`);
  }
  if (p.heads % p.kvHeads !== 0) {
    throw new AttentionError(`${where}: ${p.heads} heads are not a multiple of ${p.kvHeads} kv heads (GQA needs heads % kvHeads == 0).`);
  }
  if (p.batch > 65535 || p.heads > 65535) {
    throw new AttentionError(`${where}: batch ${p.batch} and heads ${p.heads} must each be <= 65535 (grid limits).`);
  }
  if (!Number.isFinite(p.scale) || (shape.maskElem === undefined && !(p.scale > 0))) {
    throw new AttentionError(`${where}: expected a finite scale${shape.maskElem === undefined ? ' > 0' : ''}, got ${p.scale}.`);
  }
  for (const t of ['q', 'k', 'v', 'o'] as const) {
    const st = p[t];
    for (const axis of ['b', 'h', 's'] as const) {
      const x = st[axis];
      if (!isInt(x) || x % 8 !== 0) {
        throw new AttentionError(`${where}: ${t} stride '${axis}' = ${x} is not a multiple of 8 elements; the kernel loads 16-byte rows (copy ${t} to a contiguous buffer first).`);
      }
    }
  }
  if (shape.maskElem !== undefined && p.mask === undefined) {
    throw new AttentionError(`${where}: the spec has mask '${shape.spec.mask}' but the launch gives no mask strides.`);
  }
  if (shape.maskElem === undefined && p.mask !== undefined) {
    throw new AttentionError(`${where}: the launch gives mask strides but the spec has mask 'none'.`);
  }
  if (p.mask !== undefined) {
    for (const axis of ['b', 'h', 'q', 'k'] as const) {
      if (!isInt(p.mask[axis])) throw new AttentionError(`${where}: mask stride '${axis}' = ${p.mask[axis]} is not an integer.`);
    }
  }
}

function buildArgs(shape: KernelShape, p: AttentionLaunch): AttentionArg[] {
  checkLaunch(shape, p);
  const args: AttentionArg[] = [
    { kind: 'ptr', name: 'q' },
    { kind: 'ptr', name: 'k' },
    { kind: 'ptr', name: 'v' },
    { kind: 'ptr', name: 'o' },
  ];
  if (shape.maskElem !== undefined) args.push({ kind: 'ptr', name: 'mask' });
  if (shape.spec.withLse) args.push({ kind: 'ptr', name: 'lse' });
  args.push(
    { kind: 'i32', v: p.heads },
    { kind: 'i32', v: p.heads / p.kvHeads },
    { kind: 'i32', v: p.sq },
    { kind: 'i32', v: p.skv },
    { kind: 'f32', v: p.scale * Math.LOG2E },
  );
  for (const t of ['q', 'k', 'v', 'o'] as const) {
    args.push({ kind: 'i64', v: p[t].b }, { kind: 'i64', v: p[t].h }, { kind: 'i64', v: p[t].s });
  }
  if (p.mask !== undefined) {
    args.push({ kind: 'i64', v: p.mask.b }, { kind: 'i64', v: p.mask.h }, { kind: 'i64', v: p.mask.q }, { kind: 'i64', v: p.mask.k });
  }
  return args;
}

function renderSource(shape: KernelShape): string {
  const s = shape.spec;
  const header = [
    `// ParaDiT flash-attention forward for sm_90a (generated; do not edit).`,
    `// dtype ${s.dtype}, head dim ${shape.d}/${shape.dv}, mask ${s.mask}, lse ${s.withLse ? 'yes' : 'no'};`,
    `// tiles ${shape.bm}x${shape.bn}, ${shape.stages} K/V stages, ${shape.threads} threads, ${shape.smem} B shared memory.`,
    '#include <cuda_bf16.h>',
    '#include <cuda_fp16.h>',
    '',
  ].join('\n');
  return header + renderHelpers(shape) + '\n' + renderKernel(shape) + `} // namespace ${shape.ns}\n`;
}

export function emitAttention(spec: AttentionSpec, tuning: AttentionTuning = {}): AttentionKernel {
  checkSpec(spec);
  if (tuning.stages !== undefined && tuning.stages !== 2 && tuning.stages !== 3) {
    throw new AttentionError(`attention tuning: expected stages 2 or 3, got ${tuning.stages}.`);
  }
  if (tuning.consumers !== undefined && tuning.consumers !== 2 && tuning.consumers !== 3) {
    throw new AttentionError(`attention tuning: expected consumers 2 or 3, got ${tuning.consumers}.`);
  }
  if (tuning.bn !== undefined && !(Number.isInteger(tuning.bn) && tuning.bn % 16 === 0 && tuning.bn >= 64 && tuning.bn <= 256)) {
    throw new AttentionError(`attention tuning: expected bn a multiple of 16 in [64, 256], got ${tuning.bn}.`);
  }
  const shape = kernelShape(spec, tuning);
  if (!smemFits(shape)) {
    throw new AttentionError(`attention kernel '${shape.entry}': ${shape.smem} B of shared memory exceed the 227 KiB of sm_90; use fewer stages.`);
  }
  return {
    entry: shape.entry,
    source: renderSource(shape),
    block: [shape.threads, 1, 1],
    smem: shape.smem,
    grid: (b) => [Math.max(1, Math.ceil(b.sq / shape.bm)), b.heads, b.batch],
    args: (p) => buildArgs(shape, p),
  };
}
