/**
 * A prepared kernel launch: the function and its parameters packed once into native memory (see
 * params.ts), so enqueueing it (eagerly or under graph capture) allocates nothing.
 */
import type { Driver } from './driver';
import type { InstrContext } from './errors';
import { NativeBlock, Ptr } from './ffi';
import { ResolvedArg, layoutKernelParams, writeKernelParams } from './params';

export interface Launch {
  readonly fn: Ptr;
  readonly grid: readonly [number, number, number];
  readonly block: readonly [number, number, number];
  readonly smem: number;
  /** Address of the packed `void*[]`. */
  readonly params: Ptr;
}

/** Packs `args` into a native block (kept in `blocks`, freed with the program). */
export function packLaunch(blocks: NativeBlock[], fn: Ptr, grid: Launch['grid'], block: Launch['block'], smem: number, args: ResolvedArg[]): Launch {
  const layout = layoutKernelParams(args);
  const nb = new NativeBlock(layout.bytes);
  blocks.push(nb);
  const params = writeKernelParams(nb.view, nb.addr, args, layout);
  return { fn, grid, block, smem, params };
}

/** Grid of a grid-stride helper kernel over `n` elements (256 threads a block). */
export function helperGrid(n: number): Launch['grid'] {
  return [Math.min(Math.max(1, Math.ceil(n / 256)), 65535), 1, 1];
}

export function launchOn(d: Driver, l: Launch, stream: Ptr, ctx: InstrContext): void {
  d.call('cuLaunchKernel', [l.fn, l.grid[0], l.grid[1], l.grid[2], l.block[0], l.block[1], l.block[2], l.smem, stream, l.params, null], ctx);
}
