/**
 * `--keep-bf16 PATTERN`: which layers stay in bf16 by name. A pattern written between slashes
 * (`/attn\.to_(q|k)/`) is a JavaScript regular expression searched anywhere in the name; anything
 * else is a glob matched against the whole name, where `*` is any run of characters (dots and
 * slashes included) and `?` one character (`*proj_out*`, `transformer_blocks.0.*`). A layer is
 * kept when its ONNX node name or its weight's name matches.
 */
import { IrError } from '@paradit/ir';

export interface KeepPattern {
  /** As the user wrote it (reports name it). */
  readonly source: string;
  readonly re: RegExp;
}

function globToRegExp(glob: string): RegExp {
  let s = '';
  for (const ch of glob) {
    if (ch === '*') s += '.*';
    else if (ch === '?') s += '.';
    else s += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${s}$`);
}

/** Parses one --keep-bf16 value; a bad regular expression is a clear input error. */
export function parseKeepPattern(p: string): KeepPattern {
  if (p.length === 0) throw new IrError('E_INPUT', '--keep-bf16: empty pattern; give a glob (`*proj_out*`) or a /regex/');
  if (p.length >= 2 && p.startsWith('/') && p.endsWith('/')) {
    try {
      return { source: p, re: new RegExp(p.slice(1, -1)) };
    } catch (e) {
      throw new IrError('E_INPUT', `--keep-bf16 ${p}: not a valid regular expression (${(e as Error).message}); write a glob without slashes, or fix the /regex/`);
    }
  }
  return { source: p, re: globToRegExp(p) };
}

/** The first pattern matching any of `names` (empty names never match). */
export function matchesAny(patterns: readonly KeepPattern[], names: readonly string[]): KeepPattern | undefined {
  return patterns.find((p) => names.some((n) => n.length > 0 && p.re.test(n)));
}
