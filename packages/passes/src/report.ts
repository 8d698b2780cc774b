/**
 * PassReport: the timing instrument. Pipelines record one entry per pass run, keyed by its path
 * in the pipeline ("canonicalize/fold-constants"), so nested pipelines show both their own time
 * and their passes' time. Rewrite counts per rule go in as counters.
 */

interface PassTiming {
  /** Pass path: names of the enclosing pipeline passes and the pass, joined by '/'. */
  readonly path: string;
  readonly runs: number;
  /** Runs that changed the module. */
  readonly changed: number;
  readonly ms: number;
}

export class PassReport {
  private readonly timings = new Map<string, { runs: number; changed: number; ms: number }>();
  private readonly counts = new Map<string, number>();
  private readonly stack: string[] = [];
  /** First-begin order of each path: a parent before its children, passes in pipeline order. */
  private readonly order = new Map<string, number>();

  /** Marks the start of a pass run (pipelines call this; pairs with `end`). */
  begin(name: string): void {
    this.stack.push(name);
    const key = this.stack.join('/');
    if (!this.order.has(key)) this.order.set(key, this.order.size);
  }

  /** Records the run started by the matching `begin`. */
  end(ms: number, changed: boolean): void {
    const key = this.stack.join('/');
    this.stack.pop();
    const t = this.timings.get(key) ?? { runs: 0, changed: 0, ms: 0 };
    t.runs++;
    if (changed) t.changed++;
    t.ms += ms;
    this.timings.set(key, t);
  }

  /** Adds `n` to a named counter under the current pass ("remove-noop-ops/identity"). */
  count(what: string, n = 1): void {
    const key = [...this.stack, what].join('/');
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  /** Per-pass totals, in first-run order (a pipeline before the passes it runs). */
  entries(): PassTiming[] {
    const rank = (p: string): number => this.order.get(p) ?? Number.MAX_SAFE_INTEGER;
    return [...this.timings.entries()].map(([path, t]) => ({ path, ...t })).sort((a, b) => rank(a.path) - rank(b.path));
  }

  counters(): ReadonlyMap<string, number> {
    return this.counts;
  }

  /** Total time of the outermost passes (nested time is part of its pipeline's). */
  totalMs(): number {
    let ms = 0;
    for (const [path, t] of this.timings) if (!path.includes('/')) ms += t.ms;
    return ms;
  }

  /** A table: one line per pass path, indented by nesting, then the counters. */
  format(): string {
    const rows = this.entries();
    const lines = ['pass                                          runs  changed        ms'];
    for (const r of rows) {
      const depth = r.path.split('/').length - 1;
      const name = `${'  '.repeat(depth)}${r.path.split('/').pop()}`;
      lines.push(`${name.padEnd(44)} ${String(r.runs).padStart(5)} ${String(r.changed).padStart(8)} ${r.ms.toFixed(1).padStart(9)}`);
    }
    lines.push(`${'total'.padEnd(44)} ${''.padStart(5)} ${''.padStart(8)} ${this.totalMs().toFixed(1).padStart(9)}`);
    if (this.counts.size > 0) {
      lines.push('counters:');
      for (const [k, n] of [...this.counts.entries()].sort()) lines.push(`  ${k}: ${n}`);
    }
    return lines.join('\n');
  }
}
