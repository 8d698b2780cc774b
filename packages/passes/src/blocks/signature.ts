/**
 * A block's structural signature modulo weights: ops, attributes, types and wiring of its nodes,
 * with values from outside the block numbered in first-use order, constants reduced to their
 * type and symbolic dims renamed by first appearance. Two blocks that differ only in weights (or value names) get the same signature.
 */
import type { AttrValue, Node, Value } from '@paradit/ir';

function attrText(a: AttrValue): string {
  switch (a.kind) {
    case 'tensor':
      return `tensor:${a.value.dtype}[${a.value.shape.join(',')}]:${Array.from(a.value.data.subarray(0, 16)).join(',')}`;
    case 'tensors':
      return `tensors:${a.value.length}`;
    case 'graph':
    case 'graphs':
      return `${a.kind}`; // subgraphs inside blocks are not expected; compare shallowly
    default:
      return `${a.kind}:${JSON.stringify(a.value)}`;
  }
}

/**
 * A value's type with symbolic dims renamed by first appearance in the block (`$0`, `$1`, ...):
 * dynamic-shape exports give each block's intermediate values their own inferred symbols, which
 * must not make identical blocks differ.
 */
function typeText(v: Value, symbols: Map<string, string>): string {
  const dims = v.shape.map((d) => {
    if (typeof d === 'number') return String(d);
    let id = symbols.get(d);
    if (id === undefined) {
      id = `$${symbols.size}`;
      symbols.set(d, id);
    }
    return id;
  });
  return `${v.dtype}[${dims.join(',')}]`;
}

/** FNV-1a over a string, as 8 hex digits twice (two seeds) to make collisions unlikely. */
function hashText(s: string): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0;
  }
  return h1.toString(16).padStart(8, '0') + h2.toString(16).padStart(8, '0');
}

export function blockSignature(nodes: readonly Node[], external: readonly Value[]): string {
  const ids = new Map<Value, string>();
  const symbols = new Map<string, string>();
  external.forEach((v, i) => ids.set(v, `in${i}:${typeText(v, symbols)}`));
  let next = 0;
  const parts: string[] = [];
  for (const n of nodes) {
    const ins = n.inputs.map((v) => {
      if (!v) return '_';
      const id = ids.get(v);
      if (id) return id;
      if (v.constant) {
        // Small integer constants (shapes, axes) are structure; float weights are not.
        const small = v.dtype !== 'f32' && v.dtype !== 'bf16' && v.dtype !== 'f16' && v.constant.loaded;
        return small ? `k:${typeText(v, symbols)}=${v.constant.tensor().toArray().join(',')}` : `c:${typeText(v, symbols)}`;
      }
      return `?:${typeText(v, symbols)}`;
    });
    const outs = n.outputs.map((o) => {
      const id = `v${next++}`;
      ids.set(o, id);
      return `${id}:${typeText(o, symbols)}`;
    });
    const attrs = Object.keys(n.attrs)
      .sort()
      .map((k) => `${k}=${attrText(n.attrs[k]!)}`)
      .join(';');
    parts.push(`${outs.join(',')}=${n.op}(${ins.join(',')}){${attrs}}`);
  }
  return hashText(parts.join('\n'));
}
