/**
 * Says why a test file skips. Jest drops the console output of a file whose tests are all
 * skipped (a whole suite skipped for want of ../shared, nvcc, a GPU), so a console.log'd reason
 * never shows in a multi-file run; this writes it to stderr directly, where it always shows:
 *   paradit tests: <file>: skipped: <reason>
 */
import path from 'node:path';

const said = new Set<string>();

export function skipReason(file: string, reason: string): void {
  const why = reason.replace(/\s*\n\s*/g, ' ');
  const line = `paradit tests: ${path.relative(path.resolve(__dirname, '..'), file)}: ${why.startsWith('skipped') ? why : `skipped: ${why}`}`;
  if (said.has(line)) return;
  said.add(line);
  process.stderr.write(`${line}\n`);
}
