/**
 * The default pipeline on every ../shared/fixtures model: one `attention` per attention layer
 * (flux 6, sd3 4, wan 6, cogvideox 2, flux-dev-2x4 6), no Softmax and no other decomposed pattern
 * left, and the interpreter's outputs unchanged: relative L2 <= 1e-5 against the unfused model for
 * fp32 fixtures (1e-2 for bf16, where the fused ops round once instead of after every op), on the
 * fixture's own test inputs. flux-dev-2x4 has no weights: it loads with seeded random weights and
 * is checked for structure and compile time only. Skipped, with the reason printed, when the
 * fixtures folder is absent.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Module, interpret, loadModel, readTensorFile } from '@paradit/ir';
import type { Tensor } from '@paradit/ir';
import { createPassContext, runPipeline } from '@paradit/passes';
import { defaultPipeline } from '../src/default-pipeline';
import { opCounts, relL2 } from './helpers';

const FIXTURES = path.resolve(__dirname, '../../../../shared/fixtures');
const HAVE_FIXTURES = fs.existsSync(FIXTURES);

/** Attention layers per fixture (from the fixtures README). */
const ATTENTION_LAYERS: Readonly<Record<string, number>> = {
  'flux-dynamo18': 6,
  'flux-dynamo23': 6,
  'flux-bf16-dynamo18': 6,
  'sd3-ts17': 4,
  'sd3-dynamo23': 4,
  'wan-dynamo18': 6,
  'cogvideox-dynamo18': 2,
  'flux-dev-2x4': 6,
};

/** Ops that must not survive the pipeline: each is part of a pattern some fusion claims. */
const FUSED_AWAY = ['Softmax', 'Attention', 'MatMul', 'Gemm', 'Erf', 'Tanh', 'Sigmoid', 'Gelu', 'ReduceMean', 'Pow', 'Sqrt', 'Reciprocal', 'LayerNormalization', 'RMSNormalization', 'ScatterND', 'Neg'];

/** input_K.pb or output_K.pb of test_data_set_0, in order. */
function testTensors(dir: string, kind: 'input' | 'output'): Tensor[] {
  const set = path.join(dir, 'test_data_set_0');
  const out: Tensor[] = [];
  for (let k = 0; fs.existsSync(path.join(set, `${kind}_${k}.pb`)); k++) out.push(readTensorFile(path.join(set, `${kind}_${k}.pb`)));
  return out;
}

function compile(m: Module): { out: Module; ms: number } {
  const t0 = performance.now();
  const out = runPipeline(m, defaultPipeline(), createPassContext({ verify: true }));
  return { out, ms: performance.now() - t0 };
}

describe('default pipeline on ../shared/fixtures', () => {
  if (!HAVE_FIXTURES) {
    const reason = `skipped: ${FIXTURES} is absent (fixture tests need ../shared beside the repo)`;
    // eslint-disable-next-line no-console
    console.log(reason);
    test.skip(reason, () => undefined);
    return;
  }

  const names = Object.keys(ATTENTION_LAYERS).filter((n) => fs.existsSync(path.join(FIXTURES, n, 'model.onnx')));

  test.each(names)('%s: attention per layer, nothing decomposed left, outputs unchanged', (name) => {
    const dir = path.join(FIXTURES, name);
    const structureOnly = !fs.existsSync(path.join(dir, 'test_data_set_0'));
    const m = loadModel(dir, structureOnly ? { randomWeights: { seed: 1 } } : {});
    const { out, ms } = compile(m);
    const counts = opCounts(out);
    // eslint-disable-next-line no-console
    console.log(`${name}: default pipeline ${ms.toFixed(0)} ms (verifier on); ${JSON.stringify(counts)}`);
    expect(counts['attention'] ?? 0).toBe(ATTENTION_LAYERS[name]);
    for (const op of FUSED_AWAY) expect([op, counts[op] ?? 0]).toEqual([op, 0]);
    if (structureOnly) return;
    const want = interpret(m, testTensors(dir, 'input'));
    const got = interpret(out, testTensors(dir, 'input'));
    const torch = testTensors(dir, 'output');
    want.forEach((w, k) => {
      const tol = w.dtype === 'f32' ? 1e-5 : 1e-2;
      const err = relL2(got[k]!, w);
      // PyTorch's own output: the fused model must be no further from it than the unfused one (x1.5).
      const ref = torch[k];
      const fusedRef = ref ? relL2(got[k]!, ref) : 0;
      const unfusedRef = ref ? relL2(w, ref) : 0;
      // eslint-disable-next-line no-console
      console.log(`${name}: output ${k} relative L2 fused vs unfused ${err.toExponential(2)} (tolerance ${tol}); vs PyTorch fused ${fusedRef.toExponential(2)}, unfused ${unfusedRef.toExponential(2)}`);
      expect(err).toBeLessThanOrEqual(tol);
      expect(fusedRef).toBeLessThanOrEqual(Math.max(1.5 * unfusedRef, 1e-6));
    });
  });
});
