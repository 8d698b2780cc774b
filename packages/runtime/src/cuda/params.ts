/**
 * Kernel-parameter packing for cuLaunchKernel. The driver takes `void **kernelParams`: one pointer
 * per kernel argument, each pointing at that argument's value. We lay every value out in one
 * native block (each at its natural alignment) followed by the pointer array, so a prepared
 * instruction launches with no per-call allocation. The layout is computed here without FFI
 * (unit-tested everywhere); `writeKernelParams` fills a block at a known address.
 */
import type { KernelArg } from '../plan/schema';

export type ResolvedArg =
  | { readonly kind: 'ptr'; readonly value: bigint }
  | { readonly kind: 'i32'; readonly value: number }
  | { readonly kind: 'i64'; readonly value: bigint }
  | { readonly kind: 'f32'; readonly value: number };

interface ParamLayout {
  /** Byte offset of each argument's value inside the block. */
  readonly valueOffsets: readonly number[];
  /** Byte offset of the `void*[]` array (8-byte aligned). */
  readonly arrayOffset: number;
  readonly bytes: number;
}

const SIZE: Record<ResolvedArg['kind'], number> = { ptr: 8, i32: 4, i64: 8, f32: 4 };

export function layoutKernelParams(args: readonly ResolvedArg[]): ParamLayout {
  const valueOffsets: number[] = [];
  let off = 0;
  for (const a of args) {
    const size = SIZE[a.kind];
    off = Math.ceil(off / size) * size;
    valueOffsets.push(off);
    off += size;
  }
  const arrayOffset = Math.ceil(off / 8) * 8;
  return { valueOffsets, arrayOffset, bytes: arrayOffset + 8 * args.length };
}

/** Resolves a plan argument: buffers become device addresses (space base + offset). */
export function resolveKernelArg(arg: KernelArg, bufferAddress: (buf: number) => bigint, where: string): ResolvedArg {
  if ('buf' in arg) return { kind: 'ptr', value: bufferAddress(arg.buf) };
  if ('i32' in arg) {
    if (!Number.isInteger(arg.i32) || arg.i32 < -(2 ** 31) || arg.i32 >= 2 ** 31) {
      throw new Error(`${where}: i32 argument ${arg.i32} does not fit 32 bits`);
    }
    return { kind: 'i32', value: arg.i32 };
  }
  if ('i64' in arg) return { kind: 'i64', value: BigInt(arg.i64) };
  return { kind: 'f32', value: arg.f32 };
}

/**
 * Writes values and the pointer array into `view` (a DataView over native memory whose first byte
 * is at address `base`). Returns the address to pass as kernelParams.
 */
export function writeKernelParams(view: DataView, base: bigint, args: readonly ResolvedArg[], layout: ParamLayout): bigint {
  args.forEach((a, i) => {
    const off = layout.valueOffsets[i]!;
    switch (a.kind) {
      case 'ptr':
        view.setBigUint64(off, a.value, true);
        break;
      case 'i64':
        view.setBigInt64(off, a.value, true);
        break;
      case 'i32':
        view.setInt32(off, a.value, true);
        break;
      case 'f32':
        view.setFloat32(off, a.value, true);
        break;
      default: {
        const never: never = a;
        throw new Error(`unknown kernel argument ${JSON.stringify(never)}`);
      }
    }
    view.setBigUint64(layout.arrayOffset + 8 * i, base + BigInt(off), true);
  });
  return base + BigInt(layout.arrayOffset);
}
