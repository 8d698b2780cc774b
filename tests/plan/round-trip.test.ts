/**
 * Plan round trip: a tiny DiT built in code is compiled to a plan directory, loaded, run on the CPU
 * backend (every instruction's ref against the planned buffers) and compared with the interpreter
 * on the original module. Guards the whole compile path: lowering, memory planning, views, refs,
 * weights.bin layout and the byte codecs.
 */
import { interpret } from '@paradit/ir';
import { buildTinyDit, tinyDitInputs, TINY_DIT } from '../models/tiny-dit';
import { compileAndRun, relErrors } from './helpers';
import { compareTensors } from '@paradit/runtime';
import { compileAndOpen } from '@paradit/compiler';
import fs from 'node:fs';

describe('plan round trip (tiny DiT, CPU backend)', () => {
  it('fp32 plan matches the interpreter on the original module within 1e-5', async () => {
    const m = buildTinyDit();
    const inputs = tinyDitInputs();
    const r = await compileAndRun(m, 'f32', inputs);
    const want = interpret(m, inputs)[0]!;
    const got = r.outputs.get('sample')!;
    expect(compareTensors(got, want).relL2).toBeLessThan(1e-5);
    expect(r.plan.stats['gemms']).toBeGreaterThan(0);
    expect(r.plan.stats['peakActivationBytes']).toBeGreaterThan(0);
  });

  it('bf16 plan matches the original fp32 module within 5e-2 and its own reference within 1e-2', async () => {
    const cfg = { ...TINY_DIT, mask: true, batch: 2 };
    const m = buildTinyDit(cfg);
    const inputs = tinyDitInputs(cfg);
    const r = await compileAndRun(m, 'bf16', inputs);
    const want = interpret(m, inputs)[0]!;
    const got = r.outputs.get('sample')!;
    expect(got.dtype).toBe('f32');
    expect(compareTensors(got, want).relL2).toBeLessThan(5e-2);
    expect(relErrors(r.compiled.reference, inputs, r.outputs)[0]).toBeLessThan(1e-2);
    expect(r.plan.target.dtype).toBe('bf16');
  });

  it('compileAndOpen: an in-memory module as a CPU StepExecutor, its temp plan removed on dispose', async () => {
    const m = buildTinyDit();
    const inputs = tinyDitInputs();
    const o = await compileAndOpen(m, { dtype: 'f32', backend: 'cpu' });
    expect(o.executor.inputNames).toEqual(m.graph.inputs.map((v) => v.name));
    const out = await o.executor.step(new Map(m.graph.inputs.map((v, i) => [v.name, inputs[i]!])));
    expect(compareTensors(out.get('sample')!, interpret(m, inputs)[0]!).relL2).toBeLessThan(1e-5);
    expect(fs.existsSync(o.dir)).toBe(true);
    o.dispose();
    expect(fs.existsSync(o.dir)).toBe(false);
  });
});
