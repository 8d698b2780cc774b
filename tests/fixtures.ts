/** Where ../shared/fixtures is, and which of its models have test data. */
import fs from 'node:fs';
import path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..');
export const FIXTURES = path.resolve(REPO_ROOT, '../shared/fixtures');
export const HAVE_FIXTURES = fs.existsSync(FIXTURES);
export const NO_FIXTURES_REASON = `skipped: ${FIXTURES} is absent (fixture tests need ../shared beside the repo)`;

/** Fixture folders holding a model and test_data_set_0. */
export function fixturesWithTestData(): string[] {
  if (!HAVE_FIXTURES) return [];
  return fs
    .readdirSync(FIXTURES)
    .filter((d) => fs.existsSync(path.join(FIXTURES, d, 'model.onnx')) && fs.existsSync(path.join(FIXTURES, d, 'test_data_set_0')))
    .sort();
}
