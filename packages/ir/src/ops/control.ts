/** Control flow: If, whose branches are subgraphs reading values of the enclosing graph. */
import type { ControlOp } from './op-kinds';
import type { OpRule } from './rule';
import { need } from './rule';

export const controlRules: { readonly [K in ControlOp]: OpRule } = {
  If: {
    doc: 'If(cond: bool[] or bool[1]) {then_branch, else_branch}: runs one branch; outputs are the branch outputs.',
    infer(ctx) {
      const c = need(ctx, ctx.inputs, 0);
      if (c.dtype !== 'bool') ctx.fail(`condition must be bool, got ${c.dtype}`);
      const t = ctx.attr.graph('then_branch');
      const e = ctx.attr.graph('else_branch');
      if (t.outputs.length !== ctx.numOutputs || e.outputs.length !== ctx.numOutputs) {
        ctx.fail(`branches must have ${ctx.numOutputs} outputs, got ${t.outputs.length} and ${e.outputs.length}`);
      }
      const known = ctx.values[0];
      if (known) return (known.data[0] ? t : e).outputs.map((v) => v.type);
      return t.outputs.map((v, i) => {
        const o = e.outputs[i]!;
        if (v.dtype !== o.dtype) ctx.fail(`output ${i}: then-branch gives ${v.dtype}, else-branch ${o.dtype}`);
        if (v.shape.length !== o.shape.length || v.shape.some((d, k) => d !== o.shape[k])) {
          // Differing shapes are legal in ONNX; keep the then-branch rank with symbolic mismatches.
          return { dtype: v.dtype, shape: v.shape.map((d, k) => (d === o.shape[k] ? d : `if_${i}_${k}`)) };
        }
        return v.type;
      });
    },
    run(ctx) {
      const c = need(ctx, ctx.inputs, 0);
      return ctx.runSubgraph(ctx.attr.graph(c.data[0] ? 'then_branch' : 'else_branch'));
    },
  },
};
