/** @paradit/ir: the IR, ONNX import/export, printer/parser, verifier, shape inference, interpreter. */
export * from './dtype';
export * from './tensor';
export * from './graph';
export * from './errors';
export * from './builder';
export * from './interpreter';
export { OPS, isOpKind } from './ops';
export type { OpKind, OpRule, InferCtx, RunCtx } from './ops';
export type * from './ops/op-kinds';
