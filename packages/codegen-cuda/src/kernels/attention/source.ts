/**
 * A tiny line builder for the attention kernel's CUDA source: `line` appends one line at the current
 * indentation, `block` opens `head {`, runs `body` one level deeper and closes `}`. Conditionals live
 * in the TypeScript that calls it, never inside template strings.
 */
export class Src {
  private readonly lines: string[] = [];
  private depth = 0;

  line(...texts: readonly string[]): this {
    for (const text of texts) this.lines.push(text === '' ? '' : '  '.repeat(this.depth) + text);
    return this;
  }

  block(head: string, body: () => void, tail = '}'): this {
    this.line(`${head} {`);
    this.depth++;
    body();
    this.depth--;
    this.line(tail);
    return this;
  }

  /** Appends another builder's lines (or raw text split at newlines) at the current indentation. */
  append(text: string): this {
    return this.line(...text.split('\n'));
  }

  toString(): string {
    return this.lines.join('\n') + '\n';
  }
}

/** `%a, %a+1, ..., %a+n-1` as PTX operand references (asm operand lists of the wgmma wrappers). */
export function operandList(first: number, count: number): string {
  const names: string[] = [];
  for (let i = 0; i < count; i++) names.push(`%${first + i}`);
  return names.join(', ');
}
