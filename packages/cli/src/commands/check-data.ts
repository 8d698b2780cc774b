/** Shared by `check` on the interpreter and on compiled plans. */
import fs from 'node:fs';
import { IrError } from '@paradit/ir';
import { listTestDataSets } from '@paradit/runtime';

/** The test_data_set_* folders of a model-zoo folder; a clear error when there is nothing to check. */
export function checkDataSets(dir: string): string[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new IrError('E_INPUT', `${dir} is not a folder; check expects ONNX model-zoo layout (model.onnx and test_data_set_*/)`);
  }
  const sets = listTestDataSets(dir);
  if (sets.length === 0) {
    throw new IrError('E_INPUT', `${dir} has no test_data_set_* folders, so there is nothing to check against; add test_data_set_0/input_K.pb and output_K.pb`);
  }
  return sets;
}
