/**
 * ONNX model-zoo test data: `test_data_set_N/input_K.pb` and `output_K.pb`, each a serialized
 * TensorProto, K in graph input/output order.
 */
import fs from 'node:fs';
import path from 'node:path';
import { IrError, Tensor, Value, formatType, readTensorFile } from '@paradit/ir';

export interface TestDataSet {
  readonly name: string;
  readonly dir: string;
  readonly inputs: Tensor[];
  /** Reference outputs; empty when the set has none. */
  readonly outputs: Tensor[];
}

/** The test_data_set_* folders of a model directory, in numeric order. */
export function listTestDataSets(modelDir: string): string[] {
  if (!fs.existsSync(modelDir) || !fs.statSync(modelDir).isDirectory()) return [];
  return fs
    .readdirSync(modelDir)
    .filter((d) => /^test_data_set_\d+$/.test(d) && fs.statSync(path.join(modelDir, d)).isDirectory())
    .sort((a, b) => Number(a.slice(14)) - Number(b.slice(14)))
    .map((d) => path.join(modelDir, d));
}

function readNumbered(dir: string, prefix: 'input' | 'output'): Tensor[] {
  const out: Tensor[] = [];
  for (let k = 0; ; k++) {
    const f = path.join(dir, `${prefix}_${k}.pb`);
    if (!fs.existsSync(f)) break;
    out.push(readTensorFile(f));
  }
  return out;
}

export function readTestDataSet(dir: string): TestDataSet {
  return { name: path.basename(dir), dir, inputs: readNumbered(dir, 'input'), outputs: readNumbered(dir, 'output') };
}

/**
 * Checks that a data set's tensors match the graph's declared inputs (count, dtype, static dims)
 * and outputs; throws IrError('E_INPUT') with a one-paragraph message otherwise.
 */
export function validateTestData(set: TestDataSet, inputs: readonly Value[], outputs: readonly Value[]): void {
  if (set.inputs.length !== inputs.length) {
    throw new IrError(
      'E_INPUT',
      `${set.dir}: the model has ${inputs.length} inputs (${inputs.map((v) => v.name).join(', ')}) but the data set has ` +
        `${set.inputs.length} input_K.pb files; provide input_0.pb .. input_${inputs.length - 1}.pb in graph input order`,
    );
  }
  const check = (kind: 'input' | 'output', k: number, v: Value, t: Tensor): void => {
    const ok =
      t.dtype === v.dtype && t.shape.length === v.shape.length && v.shape.every((d, i) => typeof d === 'string' || d === t.shape[i]);
    if (!ok) {
      throw new IrError(
        'E_INPUT',
        `${path.join(set.dir, `${kind}_${k}.pb`)}: ${kind} '${v.name}' of the model is ${formatType(v.type)}, but the file holds ` +
          `${t.dtype}[${t.shape.join(',')}]; regenerate the test data for this model or fix the file`,
      );
    }
  };
  set.inputs.forEach((t, k) => check('input', k, inputs[k]!, t));
  if (set.outputs.length > outputs.length) {
    throw new IrError('E_INPUT', `${set.dir}: ${set.outputs.length} output_K.pb files, but the model has ${outputs.length} outputs`);
  }
  set.outputs.forEach((t, k) => check('output', k, outputs[k]!, t));
}
