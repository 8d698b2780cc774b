/**
 * Writes the bundled example DiT to examples/tiny-dit/: model.onnx (exported by ParaDiT from a
 * seeded GraphBuilder model) and test_data_set_0/ whose reference output comes from ONNX Runtime,
 * an independent implementation. Run through examples/demo.mjs.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { exportModel, writeTensorFile, Tensor } from '@paradit/ir';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../tests/models/tiny-dit';

async function main(): Promise<void> {
  const out = path.resolve(process.argv[2] ?? path.join(__dirname, 'tiny-dit'));
  const cfg = { ...TINY_DIT, batch: 2, mask: true };
  const m = buildTinyDit(cfg);
  const bytes = exportModel(m);
  fs.mkdirSync(path.join(out, 'test_data_set_0'), { recursive: true });
  fs.writeFileSync(path.join(out, 'model.onnx'), bytes);
  const inputs = tinyDitInputs(cfg);
  const session = await ort.InferenceSession.create(Buffer.from(bytes));
  const feeds: Record<string, ort.Tensor> = {};
  m.graph.inputs.forEach((v, i) => {
    const t = inputs[i]!;
    feeds[v.name] = v.dtype === 'bool' ? new ort.Tensor('bool', Uint8Array.from(t.data), [...t.shape]) : new ort.Tensor('float32', Float32Array.from(t.data), [...t.shape]);
    writeTensorFile(path.join(out, 'test_data_set_0', `input_${i}.pb`), t, v.name);
  });
  const res = await session.run(feeds);
  m.graph.outputs.forEach((v, k) => {
    const o = res[v.name]!;
    writeTensorFile(path.join(out, 'test_data_set_0', `output_${k}.pb`), new Tensor('f32', [...o.dims], Float32Array.from(o.data as Float32Array)), v.name);
  });
  process.stdout.write(`wrote ${path.relative(process.cwd(), out)}/model.onnx (${bytes.length} bytes) and test_data_set_0 (reference outputs from ONNX Runtime ${ort.env.versions.common})\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`make-example: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
