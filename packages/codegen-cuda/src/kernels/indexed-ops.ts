/** Every op lowered by the generic element-indexed path (indexed.ts), by op name. */
import type { OpKind } from '@paradit/ir';
import type { IndexedLowering } from './indexed';
import { GATHER_LOWERINGS } from './indexed-gather';
import { LOOP_LOWERINGS } from './indexed-loop';
import { NN_LOWERINGS } from './indexed-nn';
import { lowerResize } from './indexed-resize';
import { lowerEinsum } from './indexed-einsum';

export const INDEXED_LOWERINGS: Readonly<Partial<Record<OpKind, IndexedLowering>>> = { ...GATHER_LOWERINGS, ...LOOP_LOWERINGS, ...NN_LOWERINGS, Resize: lowerResize, Einsum: lowerEinsum };
