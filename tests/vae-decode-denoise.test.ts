/**
 * `paradit denoise DIR --steps N --vae DECODER -o image.png`: a tiny DiT whose output is FLUX's
 * packed latent for the tiny VAE (16 tokens of 64 = 16 channels x 2x2 patches -> [1,16,8,8]) is
 * denoised and decoded. The PNG equals, byte for byte, an independent path: the loop's saved
 * latent unpacked here with diffusers' view/permute spelled as explicit index arithmetic, scaled,
 * run through the interpreter and mapped to bytes here. A DiT whose output fits no VAE latent is
 * refused before the loop, naming both shapes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tensor, interpret, loadModel, readTensorFile, saveModel, writeTensorFile } from '@paradit/ir';
import { decodePngRgb, psnr8 } from '@paradit/runtime';
import { runDenoise } from '../packages/cli/src/commands/denoise';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from './models/tiny-dit';
import { removeTempDirs, tempDir } from './cli/cli-helpers';

const VAE = path.join(__dirname, 'vae', 'flux_vae_tiny_dynamo');

function ditDir(inChannels: number, imageTokens: number): string {
  const cfg = { ...TINY_DIT, inChannels, imageTokens };
  const m = buildTinyDit(cfg);
  const dir = tempDir(`dit-${inChannels}`);
  saveModel(m, path.join(dir, 'model.onnx'));
  fs.mkdirSync(path.join(dir, 'test_data_set_0'));
  tinyDitInputs(cfg).forEach((t, k) => writeTensorFile(path.join(dir, 'test_data_set_0', `input_${k}.pb`), t, m.graph.inputs[k]!.name));
  return dir;
}

afterAll(() => removeTempDirs());

it('denoises a packed-latent DiT and decodes it: the PNG equals an independent unpack + decode', async () => {
  const dit = ditDir(64, 16);
  const out = tempDir('denoise-vae');
  const png = path.join(out, 'image.png');
  const saved = path.join(out, 'latents.pb');
  const r = await runDenoise(dit, { steps: '2', progress: false, vae: VAE, output: png, saveLatents: saved });
  expect(r.report.decoded).toEqual({ ran: 'the reference interpreter', files: [png] });
  expect(r.text).toMatch(/decoded with .* on the reference interpreter: wrote .*image\.png/);

  // Independent: [1, 16 tokens (4x4), 64 = 16 ch x 2 x 2] -> [1, 16, 8, 8] as view(1,4,4,16,2,2).permute(0,3,1,4,2,5).
  const packed = readTensorFile(saved);
  expect(packed.shape).toEqual([1, 16, 64]);
  const z = new Float32Array(16 * 8 * 8);
  for (let c = 0; c < 16; c++) {
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 8; x++) {
        const v = packed.data[(Math.floor(y / 2) * 4 + Math.floor(x / 2)) * 64 + c * 4 + (y % 2) * 2 + (x % 2)]!;
        z[(c * 8 + y) * 8 + x] = Math.fround(Math.fround(v / Math.fround(0.3611)) + Math.fround(0.1159));
      }
    }
  }
  const image = interpret(loadModel(VAE), [new Tensor('f32', [1, 16, 8, 8], z)])[0]!;
  const got = decodePngRgb(fs.readFileSync(png));
  let mismatched = 0;
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < 256; p++) {
      const want = Math.round(Math.min(1, Math.max(0, image.data[c * 256 + p]! / 2 + 0.5)) * 255);
      if (got.data[p * 3 + c] !== want) mismatched++;
    }
  }
  // Byte-equal except where a value sits within float rounding of a .5 boundary (none expected).
  expect(mismatched).toBe(0);
});

it('refuses a DiT whose latent fits no VAE latent, before the loop, naming both shapes', async () => {
  const dit = ditDir(8, 16);
  const out = tempDir('denoise-vae-bad');
  await expect(runDenoise(dit, { steps: '2', progress: false, vae: VAE, output: path.join(out, 'a.png') })).rejects.toThrow(
    /the transformer's latent 'hidden_states' is f32\[1,16,8\], but the VAE decoder takes \[1,16,8,8\] \(NCHW\) or FLUX's packed \[1,16,64\]/,
  );
  expect(fs.readdirSync(out)).toEqual([]);
});

it('-o without --vae, and --vae without -o, are refused', async () => {
  const dit = ditDir(64, 16);
  await expect(runDenoise(dit, { steps: '1', progress: false, output: 'a.png' })).rejects.toThrow(/add --vae DECODER/);
  await expect(runDenoise(dit, { steps: '1', progress: false, vae: VAE })).rejects.toThrow(/add -o image\.png/);
});

it('--backend cpu: the step and the VAE (compiled from its model folder) run as fp32 plans; the PNG matches the interpreter run (PSNR >= 40 dB)', async () => {
  const dit = ditDir(64, 16);
  const out = tempDir('denoise-vae-cpu');
  const a = path.join(out, 'interp.png');
  const b = path.join(out, 'plan.png');
  await runDenoise(dit, { steps: '2', progress: false, vae: VAE, output: a });
  const r = await runDenoise(dit, { steps: '2', progress: false, vae: VAE, output: b, backend: 'cpu' });
  expect(r.report.decoded?.ran).toBe('plan f32 on cpu');
  expect(psnr8(decodePngRgb(fs.readFileSync(b)), decodePngRgb(fs.readFileSync(a)))).toBeGreaterThanOrEqual(40);
});
