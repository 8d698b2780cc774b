/**
 * The First Block Cache naming convention lives in @paradit/ir (fbcache-names.ts), shared by the
 * `insert-cache-gate` pass and every runtime; re-exported here for runtime users.
 */
export {
  FBCACHE_PREFIX,
  FBCACHE_STATE_PREFIX,
  STATE_NEXT_SUFFIX,
  FBCACHE_NAMES,
  FBCACHE_IF_ATTRS,
  statePairs,
  fbcacheSignature,
} from '@paradit/ir';
export type { StatePair, FbcacheSignature } from '@paradit/ir';
