/** Every op lowered by the generic element-indexed path (indexed.ts), by op name. */
import type { IndexedLowering } from './indexed';
import { GATHER_LOWERINGS } from './indexed-gather';
import { LOOP_LOWERINGS } from './indexed-loop';
import { NN_LOWERINGS } from './indexed-nn';
import { lowerResize } from './indexed-resize';

export const INDEXED_LOWERINGS: Readonly<Record<string, IndexedLowering>> = { ...GATHER_LOWERINGS, ...LOOP_LOWERINGS, ...NN_LOWERINGS, Resize: lowerResize };
