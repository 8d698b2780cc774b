/** Every ../shared/fixtures model with test data passes `check` on the reference interpreter. */
import path from 'node:path';
import { checkModelDir, formatCheck } from '../packages/cli/src/commands/check';
import { FIXTURES, HAVE_FIXTURES, NO_FIXTURES_REASON, fixturesWithTestData } from './fixtures';
import { skipReason } from './skip-reason';

if (!HAVE_FIXTURES) skipReason(__filename, NO_FIXTURES_REASON);

describe('paradit check on ../shared/fixtures', () => {
  if (!HAVE_FIXTURES) {
    test.skip(NO_FIXTURES_REASON, () => undefined);
    return;
  }
  for (const name of fixturesWithTestData()) {
    test(name, () => {
      const r = checkModelDir(path.join(FIXTURES, name));
      // eslint-disable-next-line no-console
      console.log(formatCheck(r));
      expect(r.checks.length).toBeGreaterThan(0);
      for (const c of r.checks) expect(c.relL2).toBeLessThanOrEqual(c.tolerance);
      expect(r.ok).toBe(true);
    });
  }
});
