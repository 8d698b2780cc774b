/** A tiny indented source builder for emitted CUDA C++ (emit, open/close a block). */
export class SourceBuilder {
  private readonly lines: string[] = [];
  private depth = 0;
  private counter = 0;

  emit(line: string): void {
    this.lines.push('  '.repeat(this.depth) + line);
  }

  open(head: string): void {
    this.emit(`${head} {`);
    this.depth++;
  }

  close(tail = ''): void {
    this.depth--;
    this.emit(`}${tail}`);
  }

  /** A fresh local name. */
  tmp(prefix = 't'): string {
    return `${prefix}${this.counter++}`;
  }

  text(): string {
    return this.lines.join('\n') + '\n';
  }
}
