/**
 * docs/json-output.md checked against the real `--json` output of inspect, check, compile, run
 * and denoise (the bundled CLI on a tiny DiT, several flag combinations per command), both ways:
 * every printed field is documented with its type; every field documented as "always" is printed
 * by every run; every conditional field is printed by at least one run (except those only a GPU
 * prints, marked "cuda"). Guards against the docs and the output drifting apart.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { ZOO_BASE, buildZooDit, zooDitInputs } from '../models/dit-zoo';
import { REPO_ROOT } from '../fixtures';
import { ensureCli, removeTempDirs, runCli, tempDir, writeModelDir } from './cli-helpers';

interface DocField {
  readonly type: string;
  readonly when: string;
}

/** The tables of docs/json-output.md: command -> field path -> type and condition. */
function readDoc(): Map<string, Map<string, DocField>> {
  const text = fs.readFileSync(path.join(REPO_ROOT, 'docs/json-output.md'), 'utf8');
  const out = new Map<string, Map<string, DocField>>();
  let cur: Map<string, DocField> | undefined;
  for (const line of text.split('\n')) {
    const h = /^## (\w+)$/.exec(line);
    if (h) out.set(h[1]!, (cur = new Map()));
    const row = /^\| `([^`]+)` \| ([^|]+) \| ([^|]+) \|/.exec(line);
    if (row && cur) cur.set(row[1]!, { type: row[2]!.trim(), when: row[3]!.trim() });
  }
  return out;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v === 'object' ? 'object' : typeof v;
}

/** Every field path of `v` with its type; documented maps and arrays of non-objects are leaves. */
function paths(v: unknown, doc: Map<string, DocField>, prefix = '', out = new Map<string, string>()): Map<string, string> {
  if (typeOf(v) !== 'object') return out;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const p = prefix ? `${prefix}.${k}` : k;
    out.set(p, typeOf(x));
    if (doc.get(p)?.type === 'map') continue;
    if (Array.isArray(x)) {
      for (const e of x) if (typeOf(e) === 'object') paths(e, doc, `${p}[]`, out);
    } else paths(x, doc, p, out);
  }
  return out;
}

const accepts = (docType: string, got: string): boolean =>
  docType.split(' or ').some((t) => t === got || (t === 'map' && got === 'object'));

const CFG = { ...TINY_DIT, blocks: 2 };
const VAE = path.join(REPO_ROOT, 'tests/vae/flux_vae_tiny_dynamo');
const runs = new Map<string, unknown[]>();

beforeAll(() => {
  ensureCli();
  const model = writeModelDir(buildTinyDit(CFG), tinyDitInputs(CFG), 'json');
  const zoo = { ...ZOO_BASE, refiner: 1, blocks: ['joint', 'single'] as const, mask: true };
  const refined = writeModelDir(buildZooDit({ ...zoo, blocks: [...zoo.blocks] }), zooDitInputs({ ...zoo, blocks: [...zoo.blocks] }), 'json-refiner');
  const plan = path.join(tempDir('json-plan'), 'plan');
  const saved = path.join(tempDir('json-save'), 'out');
  const scenarios: [string, string[]][] = [
    ['inspect', ['inspect', model, '--json']],
    ['inspect', ['inspect', model, '--json', '--raw']],
    ['inspect', ['inspect', model, '--json', '--ulysses', '2', '--target', 'cuda']],
    ['inspect', ['inspect', model, '--json', '--fbcache', '0.1', '--dot', path.join(tempDir('json-dot'), 'blocks.dot')]],
    ['inspect', ['inspect', refined, '--json']], // pre-blocks (a text token refiner)
    ['inspect', ['inspect', VAE, '--json', '--rows-parallel', '2']], // the rows-parallel plan of a VAE decoder
    ['check', ['check', VAE, '--json', '--rows-parallel', '2']],
    ['check', ['check', model, '--json']],
    ['check', ['check', model, '--json', '--ulysses', '2']],
    ['check', ['check', model, '--json', '--backend', 'cpu']],
    ['compile', ['compile', model, '-o', plan, '--no-nvcc', '--dtype', 'fp32', '--json']],
    ['compile', ['compile', model, '-o', path.join(tempDir('json-plan-after'), 'plan'), '--no-nvcc', '--json', '--after', 'dtype-policy']],
    ['run', ['run', plan, '--inputs', model, '--json']],
    ['run', ['run', plan, '--inputs', model, '--json', '--compare', '--bench', '2', '--save', saved]],
    ['denoise', ['denoise', model, '--steps', '3', '--fbcache', '0.1', '--json']],
    ['denoise', ['denoise', model, '--steps', '2', '--backend', 'cpu', '--json']],
  ];
  for (const [cmd, args] of scenarios) {
    const r = runCli(args);
    if (r.code !== 0) throw new Error(`paradit ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1); // one JSON object on one line
    runs.set(cmd, [...(runs.get(cmd) ?? []), JSON.parse(lines[0]!) as unknown]);
  }
}, 240_000);
afterAll(() => removeTempDirs());

describe.each(['inspect', 'check', 'compile', 'run', 'denoise'])('paradit %s --json', (cmd) => {
  test('matches docs/json-output.md', () => {
    const doc = readDoc().get(cmd);
    expect(doc).toBeDefined();
    const seen = new Set<string>();
    for (const out of runs.get(cmd)!) {
      const got = paths(out, doc!);
      for (const [p, t] of got) {
        seen.add(p);
        const d = doc!.get(p);
        if (!d) throw new Error(`${cmd} --json prints '${p}' (${t}), which docs/json-output.md does not list`);
        if (!accepts(d.type, t)) throw new Error(`${cmd} --json: '${p}' is ${t}, docs/json-output.md says ${d.type}`);
      }
      for (const [p, d] of doc!) {
        if (d.when === 'always' && !got.has(p)) throw new Error(`${cmd} --json: '${p}' is documented as always printed, but this run has none`);
      }
    }
    const never = [...doc!].filter(([p, d]) => !seen.has(p) && d.when !== 'cuda').map(([p]) => p);
    expect(never).toEqual([]);
  });
});
