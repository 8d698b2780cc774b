/**
 * Token counts that the sequence degree does not divide (issue 4, item 8): CogVideoX's 226 text
 * tokens at ring 4 and ulysses 4 (226 = 4 * 56 + 2), an odd image size (5x5 = 25 patches) on the
 * ONNX-style tiny DiT through the default pipeline, and the cogvideox fixture (10 text tokens) at
 * degree 4. Each segment is padded to a multiple of the degree and the padding is masked, so the
 * results are exact: relative L2 1e-5 against the unsharded interpreter (1e-4, the check
 * tolerance, against PyTorch for the fixture).
 */
import path from 'node:path';
import { interpret, makeMesh, orderedLength, runSimulated } from '@paradit/ir';
import { compileForMesh, simulatedExecutor } from '../../packages/passes/src/context-parallel';
import { checkModelDir } from '../../packages/cli/src/commands/check';
import { CP_DIT, buildCpDit, cpDitInputs } from '../models/tiny-dit-cp';
import type { CpDitConfig } from '../models/tiny-dit-cp';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { FIXTURES, HAVE_FIXTURES, NO_FIXTURES_REASON } from '../fixtures';
import { relL2 } from '../support/harness';
import { skipReason } from '../skip-reason';

if (!HAVE_FIXTURES) skipReason(__filename, NO_FIXTURES_REASON);

describe("CogVideoX's 226 text tokens (with a text padding mask)", () => {
  // 226 text + 30 image tokens: neither is divisible by 4 (226 = 4*56 + 2, 30 = 4*7 + 2).
  const cfg: CpDitConfig = { ...CP_DIT, textTokens: 226, imageTokens: 30, mask: 'bool', blocks: 1 };
  const m = buildCpDit(cfg);
  const ins = cpDitInputs(cfg);
  const ref = interpret(m, ins)[0]!;
  test.each([[1, 4], [4, 1], [2, 2]])('U%i R%i: padded to 57 + 8 tokens per rank, exact', (u, r) => {
    expect(226 % 4).not.toBe(0);
    expect(orderedLength({ segments: [226, 30], chunks: 4 })).toBe(4 * (57 + 8));
    const mesh = makeMesh({ ulysses: u, ring: r });
    const out = compileForMesh(m, mesh, { prepared: true });
    // The joint stream is in rank-chunk order with padding: [226, 30] over 4 chunks.
    expect(out.graph.nodes.some((n) => n.outputs.some((o) => o.type.placement?.tokens?.segments.join(',') === '226,30'))).toBe(true);
    expect(relL2(runSimulated(out, mesh, ins)[0]!, ref)).toBeLessThan(1e-5);
  });
});

describe('an odd image size on the ONNX-style tiny DiT (5x5 = 25 patches, 7 text tokens)', () => {
  const cfg = { ...TINY_DIT, imageTokens: 25, textTokens: 7, heads: 4, mask: true };
  const m = buildTinyDit(cfg);
  const ins = tinyDitInputs(cfg);
  const ref = interpret(m, ins)[0]!;
  test.each([[2, 1], [1, 2], [4, 1], [1, 4], [1, 3], [2, 2]])('U%i R%i through the default pipeline', (u, r) => {
    const mesh = makeMesh({ ulysses: u, ring: r });
    const out = compileForMesh(m, mesh);
    expect(out.graph.nodes.some((n) => n.op === 'attention' || n.op === 'attention_lse')).toBe(true);
    expect(relL2(runSimulated(out, mesh, ins)[0]!, ref)).toBeLessThan(1e-5);
  });
});

describe('the cogvideox fixture at degree 4 (10 text tokens)', () => {
  if (!HAVE_FIXTURES) {
    test.skip(NO_FIXTURES_REASON, () => undefined);
    return;
  }
  const dir = path.join(FIXTURES, 'cogvideox-dynamo18');
  test.each([[1, 4], [4, 1]])('U%i R%i passes check against PyTorch', (u, r) => {
    const r0 = checkModelDir(dir, { execute: simulatedExecutor(makeMesh({ ulysses: u, ring: r })) });
    expect(r0.checks.length).toBeGreaterThan(0);
    for (const c of r0.checks) expect(c.relL2).toBeLessThan(c.tolerance);
    expect(r0.ok).toBe(true);
  });
});
