/** ONNX import and export: the public surface of packages/ir/src/onnx. */
export { loadModel, importModel, resolveModelPath, MIN_IR_VERSION, MAX_IR_VERSION, MIN_OPSET, MAX_OPSET } from './import';
export type { ImportOptions, LoadOptions, RandomWeightsOptions } from './import';
export { exportModel, saveModel } from './export';
export type { ExportOptions, SaveOptions } from './export';
export { decodeRawData, encodeRawData, readTensorFile, readNamedTensorFile, writeTensorFile } from './tensor-proto';
export { randomTensor, tensorSeed } from './random-weights';
export { PARADIT_DOMAIN } from './scan';
