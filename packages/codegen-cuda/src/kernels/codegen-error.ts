/** The error the CUDA emitters throw: it names the IR node (its ONNX name) and op it cannot lower. */
import type { Node } from '@paradit/ir';

export class CodegenError extends Error {
  readonly code = 'E_CODEGEN';
  constructor(
    message: string,
    readonly nodeName?: string,
  ) {
    super(message);
    this.name = 'CodegenError';
  }

  /** "Tile 'node_7': cannot lower ...: <why>; <fix>". */
  static at(node: Node, why: string): CodegenError {
    return new CodegenError(`${node.label}: cannot lower to a CUDA kernel: ${why}`, node.name);
  }
}
