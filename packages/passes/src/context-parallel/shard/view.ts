/** Node views for the sharding rules (they live in @paradit/ir, shared with the verifier), plus mesh sizes. */
import { IrError, Mesh, axisSize, isMeshAxis } from '@paradit/ir';
import type { SizeOf } from '@paradit/ir';

export { globalShape, staticShapeOf, knownValue, makeView } from '@paradit/ir';
export type { SizeOf, ViewInput } from '@paradit/ir';

export function meshSizes(mesh: Mesh): SizeOf {
  return (m) => {
    if (!isMeshAxis(m)) throw new IrError('E_VERIFY', `unknown mesh axis '${m}'`);
    return axisSize(mesh, m);
  };
}
