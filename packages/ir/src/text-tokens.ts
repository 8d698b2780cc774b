/**
 * Tokenizer for the IR text form. Produces tokens with 1-based line:column positions and, on
 * the side, the trailing `# ...` comment of each line (provenance hints; see text-format.ts).
 *
 * Tokens: value labels `%4`, identifiers (`MatMul`, `ai.onnx`, `_`), integers, floats (`1.0`,
 * `1e-7`, `0.1d`, `-inf`; bare `inf`/`nan` come as identifiers), JSON strings, elided data
 * `<hash 0123456789abcdef>`, and the punctuation ( ) { } [ ] , = : @ /.
 */
import { IrError } from './errors';

type TokenKind = 'value' | 'ident' | 'int' | 'float' | 'string' | 'elided' | 'punct' | 'eof';

export interface Token {
  readonly kind: TokenKind;
  /** Source text (for strings: the decoded string; for values: the label without '%'). */
  readonly text: string;
  readonly line: number;
  readonly col: number;
  /** Numeric value of int and float tokens. */
  readonly num: number;
  /** Float written with the `d` suffix (a double, not a float32). */
  readonly f64: boolean;
}

interface Lexed {
  readonly tokens: readonly Token[];
  /** Trailing comment text per line (without '#'), trimmed. */
  readonly hints: ReadonlyMap<number, string>;
}

const PUNCT = new Set(['(', ')', '{', '}', '[', ']', ',', '=', ':', '@', '/']);

/** An E_PARSE error at line:col, with the source line and a caret under the column. */
export function textError(src: string, line: number, col: number, message: string): IrError {
  const text = src.split('\n')[line - 1] ?? '';
  const caret = `${' '.repeat(Math.max(0, col - 1))}^`;
  return new IrError('E_PARSE', `IR text ${line}:${col}: ${message}\n  ${text}\n  ${caret}`);
}

/** How a token reads in "expected X, got Y" messages. */
export function describeToken(t: Token): string {
  switch (t.kind) {
    case 'eof':
      return 'end of input';
    case 'value':
      return `value %${t.text}`;
    case 'string':
      return `string ${JSON.stringify(t.text)}`;
    case 'elided':
      return `<hash ${t.text}>`;
    case 'punct':
      return `'${t.text}'`;
    default:
      return `${t.kind === 'ident' ? 'identifier' : 'number'} '${t.text}'`;
  }
}

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
const isIdentStart = (c: string | undefined): boolean => c !== undefined && /[A-Za-z_]/.test(c);
const isIdentChar = (c: string | undefined): boolean => c !== undefined && /[A-Za-z0-9_.]/.test(c);

export function tokenize(src: string): Lexed {
  const tokens: Token[] = [];
  const hints = new Map<number, string>();
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const n = src.length;
  const push = (kind: TokenKind, text: string, start: number, num = 0, f64 = false): void => {
    tokens.push({ kind, text, line, col: start - lineStart + 1, num, f64 });
  };
  const fail = (at: number, msg: string): never => {
    throw textError(src, line, at - lineStart + 1, msg);
  };

  while (i < n) {
    const c = src[i]!;
    if (c === '\n') {
      i++;
      line++;
      lineStart = i;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === '#') {
      let j = i + 1;
      while (j < n && src[j] !== '\n') j++;
      hints.set(line, src.slice(i + 1, j).trim());
      i = j;
    } else if (c === '%') {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_.]/.test(src[j]!)) j++;
      if (j === i + 1) fail(i, "expected a value label after '%' (like %4)");
      push('value', src.slice(i + 1, j), i);
      i = j;
    } else if (c === '"') {
      let j = i + 1;
      while (j < n && src[j] !== '"' && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      if (j >= n || src[j] !== '"') fail(i, 'unterminated string');
      let s: string;
      try {
        s = JSON.parse(src.slice(i, j + 1)) as string;
      } catch {
        return fail(i, 'malformed string escape');
      }
      push('string', s, i);
      i = j + 1;
    } else if (c === '<') {
      const m = /^<hash ([0-9a-f]{16})>/.exec(src.slice(i, i + 24));
      if (!m) fail(i, "expected elided data '<hash' and 16 hex digits '>'");
      push('elided', m![1]!, i);
      i += m![0].length;
    } else if (isDigit(c) || ((c === '-' || c === '.') && (isDigit(src[i + 1]) || (c === '-' && src[i + 1] === '.')))) {
      i = lexNumber(src, i, push, fail);
    } else if (c === '-' && src.startsWith('inf', i + 1) && !isIdentChar(src[i + 4])) {
      push('float', '-inf', i, -Infinity);
      i += 4;
    } else if (isIdentStart(c)) {
      let j = i + 1;
      while (isIdentChar(src[j])) j++;
      push('ident', src.slice(i, j), i);
      i = j;
    } else if (PUNCT.has(c)) {
      push('punct', c, i);
      i++;
    } else {
      fail(i, `unexpected character ${JSON.stringify(c)}`);
    }
  }
  push('eof', '', i);
  return { tokens, hints };
}

function lexNumber(
  src: string,
  start: number,
  push: (kind: TokenKind, text: string, start: number, num?: number, f64?: boolean) => void,
  fail: (at: number, msg: string) => never,
): number {
  const m = /^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/.exec(src.slice(start, start + 64));
  if (!m) return fail(start, 'malformed number');
  let end = start + m[0].length;
  const text = m[0];
  const isFloatText = /[.eE]/.test(text);
  const f64 = src[end] === 'd';
  if (f64) end++;
  if (isIdentChar(src[end])) fail(end, `unexpected ${JSON.stringify(src[end])} after number ${text}`);
  push(isFloatText || f64 ? 'float' : 'int', text, start, Number(text), f64);
  return end;
}
