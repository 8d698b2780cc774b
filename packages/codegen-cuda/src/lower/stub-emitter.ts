/**
 * A stand-in fragment emitter: one kernel per node with no CUDA body (its source is a comment), and
 * views for the pure reshapes. It satisfies the EmitFragment contract so the whole compile path and
 * the CPU backend (which runs each kernel's IR reference) work before the real emitter
 * (kernels/index.ts) exists; plans made with it cannot run on a GPU.
 */
import type { Graph, Node, Value } from '@paradit/ir';
import { opsWith } from '@paradit/ir';
import type { EmitFragment, EmittedAlias, EmittedKernel, FragmentLowering } from '../kernel-types';

/** Ops whose output is the input's bytes under another shape. */
const VIEW_OPS = opsWith('reshape', 'alias');

export function isViewNode(n: Node): boolean {
  const x = n.inputs[0];
  if (!x || n.outputs.length !== 1) return false;
  if (VIEW_OPS.has(n.op)) return true;
  return n.op === 'Cast' && x.dtype === n.outputs[0]!.dtype;
}

export const STUB_KERNEL_MARKER = 'paradit-stub-kernel';

export const emitFragmentStub: EmitFragment = (fragment: Graph, opts): FragmentLowering => {
  const kernels: EmittedKernel[] = [];
  const aliases: EmittedAlias[] = [];
  fragment.nodes.forEach((n, i) => {
    if (isViewNode(n)) {
      aliases.push({ value: n.outputs[0]!, of: n.inputs[0]!, byteOffset: 0, covers: [n] });
      return;
    }
    const entry = `${opts.namePrefix}_${i}_${n.op.replace(/[^A-Za-z0-9_]/g, '_')}`;
    const reads = n.inputs.filter((v): v is Value => v !== null);
    kernels.push({
      entry,
      source: `// ${STUB_KERNEL_MARKER}: ${entry} computes ${n.label} (no CUDA body: the CPU backend runs its IR reference)\n`,
      grid: [1, 1, 1],
      block: [1, 1, 1],
      smem: 0,
      args: [...reads, ...n.outputs].map((value) => ({ kind: 'value' as const, value })),
      covers: [n],
      reads,
      writes: [...n.outputs],
    });
  });
  return { kernels, aliases };
};
