/**
 * Diagnostics. Every error a user can cause is an IrError with a stable code, a one-paragraph
 * message (what, where, expected versus got, how to fix) and, where known, the ONNX node name.
 * The CLI prints `message` and exits with `exitCode` instead of a stack trace.
 */
export type ErrorCode =
  | 'E_PARSE' // malformed model file or IR text
  | 'E_UNSUPPORTED' // an op, dtype or feature ParaDiT does not support
  | 'E_OP' // an op's operands or attributes are invalid
  | 'E_VERIFY' // the IR violates an invariant
  | 'E_INPUT' // bad user input (missing file, mismatched test data)
  | 'E_RUNTIME'; // failure while executing

export class IrError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** The ONNX node the error is about, when there is one. */
    readonly nodeName?: string,
  ) {
    super(message);
    this.name = 'IrError';
  }
}

export function isIrError(e: unknown): e is IrError {
  return e instanceof IrError;
}
