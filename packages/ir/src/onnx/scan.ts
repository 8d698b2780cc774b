/**
 * Whole-model checks that run before anything is built: node naming (shared with the importer so
 * messages agree) and the list of every op ParaDiT does not support, reported at once rather
 * than one per attempt.
 */
import { isOpKind } from '../ops';
import { IrError } from '../errors';
import type { GraphP, NodeP } from './proto';
import { lowerableSequences } from './sequences';

/** Domain of ParaDiT's own ops (lower-case OpKinds created by passes) in exported models. */
export const PARADIT_DOMAIN = 'ai.paradit';

export function isDefaultDomain(domain: string | null | undefined): boolean {
  return !domain || domain === 'ai.onnx';
}

/** A node's name: its own, or `<prefix><OpType>_<index>` when the model leaves it empty. */
export function nodeName(n: NodeP, index: number, prefix: string): string {
  return n.name || `${prefix}${n.opType ?? ''}_${index}`;
}

/** True when ParaDiT has a rule for this (domain, op). */
function isSupportedOp(domain: string | null | undefined, op: string): boolean {
  if (isDefaultDomain(domain)) return isOpKind(op) && /^[A-Z]/.test(op);
  if (domain === PARADIT_DOMAIN) return isOpKind(op) && !/^[A-Z]/.test(op);
  return false;
}

function opLabel(domain: string | null | undefined, op: string): string {
  return isDefaultDomain(domain) ? op : `${domain}.${op}`;
}

/** Calls `visit` for every node of `g` and of its subgraphs, with the node's display name. */
export function walkNodes(g: GraphP, prefix: string, visit: (n: NodeP, name: string) => void): void {
  (g.node ?? []).forEach((n, i) => {
    const name = nodeName(n, i, prefix);
    visit(n, name);
    for (const a of n.attribute ?? []) {
      if (a.g) walkNodes(a.g, `${name}/${a.name ?? ''}/`, visit);
      (a.graphs ?? []).forEach((sg, k) => walkNodes(sg, `${name}/${a.name ?? ''}[${k}]/`, visit));
    }
  });
}

const SHOWN_NAMES = 4;

/**
 * Throws one IrError('E_UNSUPPORTED') listing every unsupported op in `g` (subgraphs included)
 * with the names of its nodes; does nothing when all are supported.
 */
export function checkSupported(g: GraphP, what: string): void {
  const bad = new Map<string, string[]>();
  // SplitToSequence + SequenceAt that only spell a Split are lowered by the importer (sequences.ts).
  const lowered = new Set<string>();
  const collect = (sg: GraphP): void => {
    for (const s of lowerableSequences(sg)) lowered.add(s);
    for (const n of sg.node ?? []) for (const a of n.attribute ?? []) [a.g, ...(a.graphs ?? [])].forEach((x) => x && collect(x));
  };
  collect(g);
  walkNodes(g, '', (n, name) => {
    const op = n.opType ?? '';
    if (isSupportedOp(n.domain, op)) return;
    if (op === 'SplitToSequence' && lowered.has(n.output?.[0] ?? '')) return;
    if (op === 'SequenceAt' && lowered.has(n.input?.[0] ?? '')) return;
    const label = opLabel(n.domain, op);
    const list = bad.get(label);
    if (list) list.push(name);
    else bad.set(label, [name]);
  });
  if (bad.size === 0) return;
  const lines = [...bad].map(([label, names]) => {
    const shown = names.slice(0, SHOWN_NAMES).map((s) => `'${s}'`).join(', ');
    const more = names.length > SHOWN_NAMES ? `, and ${names.length - SHOWN_NAMES} more` : '';
    return `  ${label}: ${names.length} node${names.length === 1 ? '' : 's'} (${shown}${more})`;
  });
  const first = [...bad.values()][0]![0];
  const labels = [...bad.keys()].join(', ');
  const head = bad.size === 1 ? `op ${labels} is not supported` : `ops ${labels} are not supported`;
  throw new IrError(
    'E_UNSUPPORTED',
    `${what}: ${head} by ParaDiT:\n${lines.join('\n')}\n` +
      'ParaDiT supports the default-domain ONNX ops listed in packages/ir/src/ops/op-kinds.ts; ' +
      're-export the model without these ops (another opset or exporter settings) or add rules for them.',
    first,
  );
}
