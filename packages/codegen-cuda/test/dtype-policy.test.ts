/**
 * apply-dtype-policy: contractions read and write T with converted weights, fp32 timestep math
 * stays fp32 (no constant rounded before high-precision arithmetic reads it), f64 becomes f32,
 * explicit upcasts survive, no-op casts vanish, interface dtypes are kept, and the result runs in
 * the interpreter close to the fp32 original.
 */
import { GraphBuilder, Module, Tensor, interpret, printModule, verifyModule } from '@paradit/ir';
import { canonicalize, createPassContext, defaultPipeline, runPipeline } from '@paradit/passes';
import { applyDtypePolicy, convertedFrom, parsePrecision } from '@paradit/codegen-cuda';
import { compareTensors } from '@paradit/runtime';
import { buildTinyDit, tinyDitInputs } from '../../../tests/models/tiny-dit';


function typesByName(m: Module): Map<string, string> {
  const out = new Map<string, string>();
  for (const n of m.graph.nodes) out.set(n.name, n.outputs.map((o) => o.dtype).join(','));
  return out;
}

describe('apply-dtype-policy', () => {
  it('linear runs in bf16 with converted weights; the sinusoid before it stays f32; outputs keep f32', () => {
    const b = new GraphBuilder(18);
    const t = b.input('t', { dtype: 'f32', shape: [1, 1] });
    const freqs = b.constant(Tensor.from('f32', [1, 4], [1, 0.1, 0.01, 0.001]), 'freqs');
    const [arg] = b.add('Mul', [t, freqs], {}, { name: 'arg' });
    const [s] = b.add('Sin', [arg!], {}, { name: 'sin' });
    const w = b.constant(Tensor.from('f32', [4, 3], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]), 'w');
    const [y] = b.add('linear', [s!, w], { transB: { kind: 'int', value: 0 } }, { name: 'lin', outputNames: ['y'] });
    const m = new Module(b.build([y!]), { '': 18 });
    const out = applyDtypePolicy(m, 'bf16');
    verifyModule(out);
    const types = typesByName(out);
    expect(types.get('arg')).toBe('f32');
    expect(types.get('sin')).toBe('f32');
    expect(types.get('lin')).toBe('bf16');
    expect(out.graph.outputs[0]!.dtype).toBe('f32');
    // The weight was converted (lazily, remembered for streaming); freqs stayed f32.
    const lin = out.graph.nodes.find((n) => n.name === 'lin')!;
    expect(lin.inputs[1]!.dtype).toBe('bf16');
    expect(convertedFrom(lin.inputs[1]!.constant!)?.dtype).toBe('bf16');
    expect(out.graph.nodes.find((n) => n.name === 'arg')!.inputs[1]!.dtype).toBe('f32');
    const x = Tensor.from('f32', [1, 1], [431.7]);
    const c = compareTensors(interpret(out, [x])[0]!, interpret(m, [x])[0]!);
    expect(c.relL2).toBeLessThan(1e-2);
  });

  it('f64 math becomes f32, Cast to f32 stays, Cast to bf16 becomes T, no-op casts vanish', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'bf16', shape: [4] });
    const [up] = b.add('Cast', [x], { to: { kind: 'int', value: 1 } }, { name: 'up' });
    const [d] = b.add('Cast', [up!], { to: { kind: 'int', value: 11 } }, { name: 'to_f64' });
    const [sq] = b.add('Mul', [d!, d!], {}, { name: 'sq' });
    const [down] = b.add('Cast', [sq!], { to: { kind: 'int', value: 16 } }, { name: 'down', outputNames: ['y'] });
    const m = new Module(b.build([down!]), { '': 18 });
    const f16 = applyDtypePolicy(m, 'f16');
    const types = typesByName(f16);
    expect(types.get('up')).toBe('f32');
    expect(types.has('to_f64')).toBe(false); // f32 -> f64 became f32 -> f32: gone
    expect(types.get('sq')).toBe('f32');
    expect(types.get('down')).toBe('f16');
    // The interface is kept: the output is cast back to the declared bf16.
    expect(f16.graph.outputs[0]!.dtype).toBe('bf16');
  });

  it('the policy on the fused tiny DiT runs in the interpreter within bf16 tolerance of fp32', () => {
    const m = buildTinyDit();
    const fused = runPipeline(m, defaultPipeline(), createPassContext({ verify: true }));
    const typed = runPipeline(applyDtypePolicy(fused, parsePrecision('bf16')), [canonicalize], createPassContext({ verify: true }));
    const text = printModule(typed);
    expect(text).toMatch(/linear\([^)]*\).*: bf16\[/);
    expect(text).toMatch(/Sin\(.*: f32\[/);
    const ins = tinyDitInputs();
    const c = compareTensors(interpret(typed, ins)[0]!, interpret(m, ins)[0]!);
    expect(c.relL2).toBeGreaterThan(0); // it did change precision
    expect(c.relL2).toBeLessThan(5e-2);
  });

  it('f32 is the identity on an f32 model without f64', () => {
    const m = buildTinyDit();
    const out = applyDtypePolicy(m, 'f32');
    const ins = tinyDitInputs();
    expect(compareTensors(interpret(out, ins)[0]!, interpret(m, ins)[0]!).relL2).toBe(0);
  });

  it('rejects an unknown --dtype with the accepted spellings', () => {
    expect(() => parsePrecision('int8')).toThrow(/--dtype int8: expected bf16, fp16, fp32 or fp8/);
  });
});
