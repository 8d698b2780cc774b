/**
 * shard_slice on the device: the rank's part of every row of a replicated value, as one strided
 * 2D copy (cuMemcpy2DAsync_v2): Height = rows, WidthInBytes = partBytes, source pitch =
 * groupSize * partBytes starting at part p = (index - shift) mod groupSize, destination packed.
 * The parameters and the CUDA_MEMCPY2D bytes are computed here without FFI (unit-tested against
 * shardSliceInto of plan/collectives.ts); program.ts keeps the struct in native memory.
 */
import type { ShardSliceInstr } from '../plan/schema';

interface Copy2D {
  readonly srcOffset: number;
  readonly srcPitch: number;
  readonly dstPitch: number;
  readonly width: number;
  readonly height: number;
}

const mod = (a: number, n: number): number => ((a % n) + n) % n;

/** Source offset, pitches and extent of the rank's slice (`index` is its index along meshAxis). */
export function shardSliceCopy(instr: Pick<ShardSliceInstr, 'groupSize' | 'shift' | 'rows' | 'partBytes'>, index: number): Copy2D {
  const part = mod(index - instr.shift, instr.groupSize);
  return { srcOffset: part * instr.partBytes, srcPitch: instr.groupSize * instr.partBytes, dstPitch: instr.partBytes, width: instr.partBytes, height: instr.rows };
}

/** sizeof(CUDA_MEMCPY2D) on 64-bit platforms. */
export const MEMCPY2D_BYTES = 128;
const CU_MEMORYTYPE_DEVICE = 2;

/**
 * Writes a device-to-device CUDA_MEMCPY2D into `v` (128 bytes, zeroed by the caller):
 *   0 srcXInBytes, 8 srcY, 16 srcMemoryType (int), 24 srcHost, 32 srcDevice, 40 srcArray, 48 srcPitch,
 *   56 dstXInBytes, 64 dstY, 72 dstMemoryType (int), 80 dstHost, 88 dstDevice, 96 dstArray, 104 dstPitch,
 *   112 WidthInBytes, 120 Height.
 */
export function writeMemcpy2D(v: DataView, src: bigint, dst: bigint, c: Copy2D): void {
  v.setInt32(16, CU_MEMORYTYPE_DEVICE, true);
  v.setBigUint64(32, src + BigInt(c.srcOffset), true);
  v.setBigUint64(48, BigInt(c.srcPitch), true);
  v.setInt32(72, CU_MEMORYTYPE_DEVICE, true);
  v.setBigUint64(88, dst, true);
  v.setBigUint64(104, BigInt(c.dstPitch), true);
  v.setBigUint64(112, BigInt(c.width), true);
  v.setBigUint64(120, BigInt(c.height), true);
}
