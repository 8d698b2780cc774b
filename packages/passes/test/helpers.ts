/**
 * Shared test helpers for the pass tests: running one pass with the verifier on. IR from text,
 * structural comparison, seeded inputs and output comparison come from the repository's one
 * harness (tests/support/harness.ts), re-exported here for the pass tests.
 */
import type { Module } from '@paradit/ir';
import { Pass, PassContext, PassContextInit, createPassContext, runPipeline } from '@paradit/passes';

export { expectIr, expectSameResults, ir, opCounts, randomInputs, relL2, rng } from '../../../tests/support/harness';

/** A context with the verifier on (tests always verify around every pass). */
export function testContext(init: PassContextInit = {}): PassContext {
  return createPassContext({ verify: true, ...init });
}

/** Runs one pass through runPipeline (so the verifier checks its input and output). */
export function runOne(pass: Pass, m: Module, init: PassContextInit = {}): Module {
  return runPipeline(m, [pass], testContext(init));
}

