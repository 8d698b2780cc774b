/** Every op lowered by the generic element-indexed path (indexed.ts), by op name. */
import type { IndexedLowering } from './indexed';
import { GATHER_LOWERINGS } from './indexed-gather';
import { LOOP_LOWERINGS } from './indexed-loop';

export const INDEXED_LOWERINGS: Readonly<Record<string, IndexedLowering>> = { ...GATHER_LOWERINGS, ...LOOP_LOWERINGS };
