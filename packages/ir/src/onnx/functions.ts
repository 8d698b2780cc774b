/**
 * Model-local functions (ModelProto.functions): every call is inlined at the protobuf level
 * before import, so the rest of the importer only ever sees plain nodes.
 *
 * A call node `y = F(a, b)` becomes F's body with formal inputs renamed to the actual inputs,
 * formal outputs to the actual outputs, every other name (and every body node name) prefixed
 * with `<call node name>/`, and attributes that reference the call's attributes (ref_attr_name)
 * replaced by them (dropped when the call does not set them). Every node in a graph that holds a
 * call is given an explicit name first, so synthesized names stay those of the original model.
 *
 * onnx-proto decodes the onnx 1.10 schema, which has no attribute defaults for functions
 * (FunctionProto.attribute_proto, onnx 1.13): an unset referenced attribute is simply omitted.
 */
import { IrError } from '../errors';
import type { AttributeP, FunctionP, GraphP, NodeP, TensorP, ValueInfoP } from './proto';
import { int64ToNumber } from './proto';
import { isDefaultDomain, nodeName } from './scan';

type FunctionTable = ReadonlyMap<string, FunctionP>;

const MAX_DEPTH = 32;

function key(domain: string | null | undefined, name: string | null | undefined): string {
  return `${isDefaultDomain(domain) ? '' : domain}::${name ?? ''}`;
}

/** Returns `g` with every call of a model-local function inlined (or `g` itself when none). */
export function inlineFunctions(g: GraphP, functions: readonly FunctionP[], modelOpset: number): GraphP {
  if (functions.length === 0) return g;
  const table = new Map<string, FunctionP>();
  for (const f of functions) {
    const fOpset = (f.opsetImport ?? []).find((o) => isDefaultDomain(o.domain));
    const v = fOpset ? int64ToNumber(fOpset.version) : modelOpset;
    if (v !== modelOpset) {
      throw new IrError(
        'E_UNSUPPORTED',
        `model-local function '${f.name ?? ''}' uses ONNX opset ${v}, but the model imports opset ${modelOpset}; ` +
          'ParaDiT builds every node with one opset (re-export with a single opset)',
      );
    }
    table.set(key(f.domain, f.name), f);
  }
  return expandGraph(g, table, 0, (x) => x, new Map(), { call: '', synth: '' });
}

type Rename = (name: string) => string;

/**
 * How node names are made: explicit names get `call` (the enclosing call's `<name>/`, empty
 * outside functions); empty names become `<synth><OpType>_<index>` as in scan.ts's walkNodes.
 */
interface NamePrefix {
  readonly call: string;
  readonly synth: string;
}

/** Applies `rename` to every value name in `g`, resolves attribute references, expands calls. */
function expandGraph(
  g: GraphP,
  fns: FunctionTable,
  depth: number,
  rename: Rename,
  callAttrs: ReadonlyMap<string, AttributeP>,
  prefix: NamePrefix,
): GraphP {
  const vi = (v: ValueInfoP): ValueInfoP => ({ ...v, name: rename(v.name ?? '') });
  return {
    ...g,
    node: expandNodes(g.node ?? [], fns, depth, rename, callAttrs, prefix),
    input: (g.input ?? []).map(vi),
    output: (g.output ?? []).map(vi),
    valueInfo: (g.valueInfo ?? []).map(vi),
    initializer: (g.initializer ?? []).map((t): TensorP => ({ ...t, name: rename(t.name ?? '') })),
  };
}

function expandNodes(
  nodes: readonly NodeP[],
  fns: FunctionTable,
  depth: number,
  rename: Rename,
  callAttrs: ReadonlyMap<string, AttributeP>,
  prefix: NamePrefix,
): NodeP[] {
  const out: NodeP[] = [];
  nodes.forEach((n, i) => {
    const name = n.name ? prefix.call + n.name : nodeName(n, i, prefix.synth);
    const node: NodeP = {
      ...n,
      name,
      input: (n.input ?? []).map((x) => (x ? rename(x) : '')),
      output: (n.output ?? []).map((x) => (x ? rename(x) : '')),
      attribute: resolveAttrs(n.attribute ?? [], fns, depth, rename, callAttrs, name, prefix.call),
    };
    const f = fns.get(key(n.domain, n.opType));
    if (!f) {
      out.push(node);
      return;
    }
    if (depth >= MAX_DEPTH) {
      throw new IrError('E_UNSUPPORTED', `function '${f.name ?? ''}' (node '${name}') nests more than ${MAX_DEPTH} calls deep; recursive functions are not supported`, name);
    }
    out.push(...instantiate(f, node, name, fns, depth + 1));
  });
  return out;
}

/** F's body for one call (whose inputs, outputs and attributes are already resolved). */
function instantiate(f: FunctionP, call: NodeP, callName: string, fns: FunctionTable, depth: number): NodeP[] {
  const map = new Map<string, string>();
  const prefix = `${callName}/`;
  (f.input ?? []).forEach((formal, k) => map.set(formal, call.input?.[k] ?? ''));
  (f.output ?? []).forEach((formal, k) => map.set(formal, call.output?.[k] || prefix + formal));
  const rename: Rename = (x) => map.get(x) ?? prefix + x;
  const attrs = new Map<string, AttributeP>();
  for (const a of call.attribute ?? []) attrs.set(a.name ?? '', a);
  return expandNodes(f.node ?? [], fns, depth, rename, attrs, { call: prefix, synth: prefix });
}

function resolveAttrs(
  list: readonly AttributeP[],
  fns: FunctionTable,
  depth: number,
  rename: Rename,
  callAttrs: ReadonlyMap<string, AttributeP>,
  owner: string,
  callPrefix: string,
): AttributeP[] {
  const out: AttributeP[] = [];
  for (const a of list) {
    if (a.refAttrName) {
      const actual = callAttrs.get(a.refAttrName);
      if (actual) out.push({ ...actual, name: a.name ?? '' });
      continue;
    }
    if (!a.g && !(a.graphs && a.graphs.length > 0)) {
      out.push(a);
      continue;
    }
    // Subgraph node names follow the prefix scheme of scan.ts's walkNodes.
    const at = `${owner}/${a.name ?? ''}`;
    out.push({
      ...a,
      g: a.g ? expandGraph(a.g, fns, depth, rename, callAttrs, { call: callPrefix, synth: `${at}/` }) : a.g,
      graphs: (a.graphs ?? []).map((sg, k) =>
        expandGraph(sg, fns, depth, rename, callAttrs, { call: callPrefix, synth: `${at}[${k}]/` }),
      ),
    });
  }
  return out;
}
