/**
 * The device mesh of a context-parallel plan: three axes (cfg, ring, ulysses), ulysses innermost,
 * so Ulysses groups are adjacent ranks (as in ParaAttention / USP):
 *
 *   rank = (c * R + r) * U + u        world W = C * R * U
 *
 * Mesh axes a collective or a placement can name:
 * - 'cfg'     the classifier-free-guidance batch split (size C);
 * - 'ring'    ring attention (size R);
 * - 'ulysses' Ulysses all-to-all (size U);
 * - 'sp'      the whole sequence-parallel group ring x ulysses (size R*U), index p = r*U + u, so
 *             a ring block r is the run of U consecutive sp chunks rU..rU+U-1.
 * A group of an axis is the set of ranks that agree on every other coordinate, ordered by their
 * index along the axis.
 */
import { IrError } from './errors';

export type MeshAxis = 'cfg' | 'ring' | 'ulysses' | 'sp';

const MESH_AXES: readonly MeshAxis[] = ['cfg', 'ring', 'ulysses', 'sp'];

export interface Mesh {
  readonly cfg: number;
  readonly ring: number;
  readonly ulysses: number;
}

interface MeshCoords {
  readonly cfg: number;
  readonly ring: number;
  readonly ulysses: number;
}

/** A validated mesh; every degree defaults to 1. */
export function makeMesh(degrees: Partial<Mesh> = {}): Mesh {
  const m = { cfg: degrees.cfg ?? 1, ring: degrees.ring ?? 1, ulysses: degrees.ulysses ?? 1 };
  for (const [k, v] of Object.entries(m)) {
    if (!Number.isInteger(v) || v < 1) throw new IrError('E_INPUT', `mesh degree --${k} must be a positive integer, got ${v}`);
  }
  return Object.freeze(m);
}

export function isMeshAxis(s: string): s is MeshAxis {
  return (MESH_AXES as readonly string[]).includes(s);
}

export function worldSize(m: Mesh): number {
  return m.cfg * m.ring * m.ulysses;
}

/** Degree of the sequence-parallel group (ring x ulysses). */
export function seqDegree(m: Mesh): number {
  return m.ring * m.ulysses;
}

export function axisSize(m: Mesh, axis: MeshAxis): number {
  switch (axis) {
    case 'cfg':
      return m.cfg;
    case 'ring':
      return m.ring;
    case 'ulysses':
      return m.ulysses;
    case 'sp':
      return m.ring * m.ulysses;
    default:
      return assertNeverAxis(axis);
  }
}

export function rankOf(m: Mesh, c: MeshCoords): number {
  return (c.cfg * m.ring + c.ring) * m.ulysses + c.ulysses;
}

export function coordsOf(m: Mesh, rank: number): MeshCoords {
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize(m)) {
    throw new IrError('E_INPUT', `rank ${rank} is outside the mesh (world size ${worldSize(m)})`);
  }
  const ulysses = rank % m.ulysses;
  const ring = Math.floor(rank / m.ulysses) % m.ring;
  const cfg = Math.floor(rank / (m.ulysses * m.ring));
  return { cfg, ring, ulysses };
}

/** The rank's index along a mesh axis (its position in its group of that axis). */
export function axisIndex(m: Mesh, axis: MeshAxis, rank: number): number {
  const c = coordsOf(m, rank);
  switch (axis) {
    case 'cfg':
      return c.cfg;
    case 'ring':
      return c.ring;
    case 'ulysses':
      return c.ulysses;
    case 'sp':
      return c.ring * m.ulysses + c.ulysses;
    default:
      return assertNeverAxis(axis);
  }
}

/** The ranks of `rank`'s group along `axis`, ordered by their index along it. */
export function groupOf(m: Mesh, axis: MeshAxis, rank: number): number[] {
  const c = coordsOf(m, rank);
  const n = axisSize(m, axis);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    switch (axis) {
      case 'cfg':
        out.push(rankOf(m, { ...c, cfg: i }));
        break;
      case 'ring':
        out.push(rankOf(m, { ...c, ring: i }));
        break;
      case 'ulysses':
        out.push(rankOf(m, { ...c, ulysses: i }));
        break;
      case 'sp':
        out.push(rankOf(m, { cfg: c.cfg, ring: Math.floor(i / m.ulysses), ulysses: i % m.ulysses }));
        break;
      default:
        assertNeverAxis(axis);
    }
  }
  return out;
}

/** Every group of an axis (a partition of the ranks), ordered by their first rank. */
export function groupsOf(m: Mesh, axis: MeshAxis): number[][] {
  const seen = new Set<number>();
  const out: number[][] = [];
  for (let r = 0; r < worldSize(m); r++) {
    if (seen.has(r)) continue;
    const g = groupOf(m, axis, r);
    g.forEach((x) => seen.add(x));
    out.push(g);
  }
  return out;
}

/**
 * The mesh axis that shards token axes: 'sp' when both ring and ulysses are used, else the one
 * that is (so a 1-D mesh names its real axis), undefined when the sequence is not split.
 */
export function seqMeshAxis(m: Mesh): MeshAxis | undefined {
  if (m.ring > 1 && m.ulysses > 1) return 'sp';
  if (m.ring > 1) return 'ring';
  if (m.ulysses > 1) return 'ulysses';
  return undefined;
}

export function formatMesh(m: Mesh): string {
  return `cfg=${m.cfg} ring=${m.ring} ulysses=${m.ulysses} (world ${worldSize(m)})`;
}

function assertNeverAxis(x: never): never {
  throw new Error(`unknown mesh axis ${String(x)}`);
}
