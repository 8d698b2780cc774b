/**
 * The decisions behind one attention kernel, made once from its spec: element types, tile sizes,
 * pipeline depth, thread layout and the shared-memory budget. The renderers only read this.
 */
export type AttentionDtype = 'bf16' | 'f16';
export type AttentionMaskKind = 'none' | 'additive-f32' | 'additive-bf16' | 'additive-f16' | 'bool';

export interface AttentionSpec {
  readonly dtype: AttentionDtype;
  /** Head dim of Q and K (the reduction axis of Q K^T): 64 or 128. */
  readonly headDim: number;
  /** Head dim of V and O; defaults to headDim. 64 or 128. */
  readonly headDimV?: number;
  readonly mask: AttentionMaskKind;
  /** Also write the fp32 log-sum-exp [B, heads, Sq] (natural log of the scaled, masked scores). */
  readonly withLse: boolean;
}

/** Tuning knobs that do not change the function computed (the bench sweeps them). */
export interface AttentionTuning {
  /** K/V pipeline depth in shared memory: 2 or 3. */
  readonly stages?: number;
  /** Consumer warpgroups (64 query rows each): 2 or 3. */
  readonly consumers?: number;
  /** Two consumers take turns issuing wgmma (FA3 ping-pong, default on); ignored with 3 consumers. */
  readonly pingpong?: boolean;
  /** Keys per tile: a multiple of 16 in [64, 256]. */
  readonly bn?: number;
}

export interface KernelShape {
  readonly entry: string;
  readonly ns: string;
  readonly spec: AttentionSpec;
  readonly elem: string;
  readonly elem2: string;
  readonly pack2: string;
  readonly ptxType: string;
  readonly d: number;
  readonly dv: number;
  /** Query rows per block: one 64-row slice per consumer warpgroup. */
  readonly bm: number;
  /** Keys per pipeline tile. */
  readonly bn: number;
  readonly stages: number;
  /** Warpgroups: one producer (cp.async loads) and bm/64 consumers (wgmma + softmax). */
  readonly consumers: number;
  readonly pingpong: boolean;
  /** Rescale O just before issuing P V (else right after the previous P V lands). */
  readonly rescaleBeforePV: boolean;
  readonly threads: number;
  readonly smem: number;
  /** Registers per thread after setmaxnreg: producer / consumers. */
  readonly producerRegs: number;
  readonly consumerRegs: number;
  /** C type of one mask element, or undefined without a mask. */
  readonly maskElem: string | undefined;
}

const SMEM_LIMIT = 227 * 1024;
const BARRIER_BYTES = 8 * 16;
/** Slack to round the dynamic shared-memory base up to the 1024-byte swizzle atom. */
const ALIGN_SLACK = 1024;

function maskElemType(mask: AttentionMaskKind): string | undefined {
  switch (mask) {
    case 'none':
      return undefined;
    case 'additive-f32':
      return 'float';
    case 'additive-bf16':
      return '__nv_bfloat16';
    case 'additive-f16':
      return '__half';
    case 'bool':
      return 'unsigned char';
  }
}

function entryName(spec: AttentionSpec): string {
  const dv = spec.headDimV ?? spec.headDim;
  const parts = ['paradit_attn_fwd', spec.dtype, `d${spec.headDim}`];
  if (dv !== spec.headDim) parts.push(`dv${dv}`);
  parts.push(spec.mask.replace('-', '_'));
  if (spec.withLse) parts.push('lse');
  return parts.join('_');
}

export function kernelShape(spec: AttentionSpec, tuning: AttentionTuning = {}): KernelShape {
  const d = spec.headDim;
  const dv = spec.headDimV ?? spec.headDim;
  const stages = tuning.stages ?? 2;
  const consumers = tuning.consumers ?? 2;
  const bm = 64 * consumers;
  // Measured on H100 (docs/perf-notes.md, run 3): 160 keys for d128 and 192 for d64 beat 128 by
  // 2.5% and 4%. Registers bound it: S (bn/2) + O (dv/2) + P (bn/4) per thread must leave room,
  // so 192 only with a 64-wide V; masked kernels keep 128 (their mask addressing needs registers).
  const defaultBn = spec.mask !== 'none' ? 128 : dv === 64 ? 192 : 160;
  const bn = tuning.bn ?? defaultBn;
  const smem = bm * d * 2 + stages * bn * (d + dv) * 2 + BARRIER_BYTES + ALIGN_SLACK;
  const pingpong = consumers === 2 && (tuning.pingpong ?? true);
  const entry =
    entryName(spec) +
    (stages === 2 ? '' : `_st${stages}`) +
    (consumers === 2 ? '' : `_c${consumers}`) +
    (consumers === 2 && !pingpong ? '_nopp' : '') +
    (bn === defaultBn ? '' : `_n${bn}`);
  // setmaxnreg: 65536 registers shared by one producer and `consumers` consumer warpgroups.
  // Two consumers hold S (BN/2), O (Hv/2) and P (BN/4) fp32/packed registers plus mask addressing;
  // a masked kernel needs the most, so its producer gives up more (a few bytes of producer spill).
  const masked = spec.mask !== 'none';
  const producerRegs = consumers === 3 ? 32 : masked ? 24 : 40;
  const consumerRegs = consumers === 3 ? 160 : masked ? 240 : 232;
  const bf = spec.dtype === 'bf16';
  return {
    entry,
    ns: `${entry}_impl`,
    spec,
    elem: bf ? '__nv_bfloat16' : '__half',
    elem2: bf ? '__nv_bfloat162' : '__half2',
    pack2: bf ? '__floats2bfloat162_rn' : '__floats2half2_rn',
    ptxType: bf ? 'bf16' : 'f16',
    d,
    dv,
    bm,
    bn,
    stages,
    consumers,
    pingpong,
    rescaleBeforePV: !masked,
    threads: 128 * (consumers + 1),
    smem,
    producerRegs,
    consumerRegs,
    maskElem: maskElemType(spec.mask),
  };
}

export function smemFits(shape: KernelShape): boolean {
  return shape.smem <= SMEM_LIMIT;
}
