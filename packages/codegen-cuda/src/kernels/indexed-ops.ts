/** Every op lowered by the generic element-indexed path (indexed.ts), by op name. */
import type { IndexedLowering } from './indexed';
import { GATHER_LOWERINGS } from './indexed-gather';

export const INDEXED_LOWERINGS: Readonly<Record<string, IndexedLowering>> = { ...GATHER_LOWERINGS };
