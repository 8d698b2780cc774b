/**
 * Slurm's compact host lists (SLURM_NODELIST, SLURM_STEP_NODELIST): `node[01-04,07],gpu-a[1-2]`
 * expands to node01 node02 node03 node04 node07 gpu-a1 gpu-a2 (zero padding kept, ranges
 * inclusive, commas inside brackets do not split hosts). Only the first host is needed to find
 * rank 0 (Slurm places task 0 on the first node of the step), but the whole expansion is what the
 * tests check.
 */
import { IrError } from '@paradit/ir';

function bad(what: string, list: string, why: string): never {
  throw new IrError('E_INPUT', `${what}='${list}' is not a Slurm host list: ${why}; expected the compact form Slurm writes, e.g. node[01-04,07]`);
}

/** Splits at commas that are outside brackets. */
function splitTop(list: string, what: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === '[') depth++;
    else if (c === ']') {
      depth--;
      if (depth < 0) bad(what, list, `']' at ${i} without '['`);
    } else if (c === ',' && depth === 0) {
      parts.push(list.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) bad(what, list, "a '[' is not closed");
  parts.push(list.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

/** `01-04,07` -> ['01','02','03','04','07'] (the width of the lower bound is kept). */
function expandRanges(body: string, what: string, list: string): string[] {
  const out: string[] = [];
  for (const piece of body.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(piece.trim());
    if (!m) bad(what, list, `'${piece}' inside brackets is neither a number nor a range a-b`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) bad(what, list, `range ${piece} runs backwards`);
    if (hi - lo > 100_000) bad(what, list, `range ${piece} is too large`);
    const width = m[1]!.length;
    for (let v = lo; v <= hi; v++) out.push(String(v).padStart(width, '0'));
  }
  return out;
}

/** Expands one host pattern (it may hold several bracket groups: rack[1-2]-n[01-02]). */
function expandHost(pattern: string, what: string, list: string): string[] {
  const open = pattern.indexOf('[');
  if (open < 0) return [pattern];
  const close = pattern.indexOf(']', open);
  const prefix = pattern.slice(0, open);
  const suffixes = expandHost(pattern.slice(close + 1), what, list);
  const out: string[] = [];
  for (const v of expandRanges(pattern.slice(open + 1, close), what, list)) for (const s of suffixes) out.push(`${prefix}${v}${s}`);
  return out;
}

/** Every host of a Slurm host list, in order. `what` names the variable for messages. */
export function expandNodeList(list: string, what = 'SLURM_NODELIST'): string[] {
  const hosts = splitTop(list, what).flatMap((p) => expandHost(p, what, list));
  if (hosts.length === 0) bad(what, list, 'it names no host');
  return hosts;
}

/** The first host of a Slurm host list, without expanding the rest. */
export function firstNode(list: string, what = 'SLURM_NODELIST'): string {
  const first = splitTop(list, what)[0];
  if (first === undefined) bad(what, list, 'it names no host');
  return expandHost(first, what, list)[0]!;
}
