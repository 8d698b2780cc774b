/**
 * Diagnostics. Every error a user can cause is an IrError with a stable code, a one-paragraph
 * message (what, where, expected versus got, how to fix) and, where known, the ONNX node name.
 * The CLI prints `message` and exits with `exitCode` instead of a stack trace.
 */
type ErrorCode =
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

/**
 * A bug in ParaDiT, not in the user's input: an exception that is not an IrError escaped a pass, a
 * pass produced IR that fails the verifier, an op's `run` disagreed with its `infer`, or an
 * instruction failed inside the runtime. `where` names the pass, node or instruction; the CLI
 * prints "this is a bug in ParaDiT: <message>" and exits 3 (the stack under --debug).
 */
export class InternalError extends Error {
  constructor(
    message: string,
    /** The pass, node or instruction that failed ("pass 'fuse-norms'", "Exp 'exp_3'"). */
    readonly where?: string,
    /** The error that was caught, when this wraps one. */
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'InternalError';
  }
}

export function isInternalError(e: unknown): e is InternalError {
  return e instanceof InternalError;
}

/**
 * What to throw when `e` escaped from `where`: an IrError (the input's fault) keeps its code and
 * node and gains the prefix; an InternalError or anything else (a TypeError from a bug) becomes
 * an InternalError naming `where`. The original stack is kept for --debug.
 */
export function wrapAt(e: unknown, where: string): IrError | InternalError {
  const msg = e instanceof Error ? e.message : String(e);
  const out = e instanceof IrError ? new IrError(e.code, `${where}: ${msg}`, e.nodeName) : new InternalError(`${where}: ${msg}`, e instanceof InternalError ? (e.where ?? where) : where, e);
  if (e instanceof Error && e.stack) out.stack = e.stack;
  return out;
}
