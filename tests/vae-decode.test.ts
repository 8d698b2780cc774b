/**
 * `paradit decode` and the image path (packages/runtime/src/image): PNGs written from the tiny VAE
 * fixtures' test latent (tests/vae/*, already in the decoder's scale, so --no-latent-scaling)
 * compared with PyTorch's decode of the same latent (output_0.pb) mapped to bytes the pipeline's
 * way: PSNR >= 40 dB for fp32 and bf16 plans on the CPU backend and for the interpreter. The
 * latent scaling, the postprocess byte mapping and FLUX's 2x2 unpacking are checked against hand-
 * computed values; the CLI's bad-input cases exit 2 and leave no file behind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tensor, readTensorFile, writeTensorFile } from '@paradit/ir';
import { compileToPlan } from '@paradit/compiler';
import { decodePngRgb, imageFileNames, imagesFromDecoded, psnr8, toByte, toVaeLatent, unscaleLatents, writePngFiles } from '@paradit/runtime';
import type { Image8 } from '@paradit/runtime';
import { runDecode } from '../packages/cli/src/commands/decode';
import { ensureCli, expectUserError, removeTempDirs, runCli, tempDir } from './cli/cli-helpers';

const VAE = path.join(__dirname, 'vae');
const FOLDERS = ['flux_vae_tiny_dynamo', 'flux_vae_tiny_ts'];
const MIN_PSNR = 40;

/** PyTorch's decode as bytes, mapped here independently: (x/2+0.5) clamp, *255, round, HWC. */
function referenceImage(folder: string): Image8 {
  const t = readTensorFile(path.join(VAE, folder, 'test_data_set_0', 'output_0.pb'));
  const [, C, H, W] = t.shape as [number, number, number, number];
  const data = new Uint8Array(H * W * C);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < C; c++) {
        const v = Math.min(1, Math.max(0, t.data[(c * H + y) * W + x]! / 2 + 0.5)) * 255;
        data[(y * W + x) * C + c] = Math.round(v);
      }
    }
  }
  return { width: W, height: H, channels: 3, data };
}

const latentFile = (folder: string): string => path.join(VAE, folder, 'test_data_set_0', 'input_0.pb');
const readPng = (file: string): Image8 => decodePngRgb(fs.readFileSync(file));

afterAll(() => removeTempDirs());

describe('latent scaling and the image mapping (hand-computed)', () => {
  it('applies latents / 0.3611 + 0.1159 (FLUX.1-dev) in fp32', () => {
    const z = Tensor.from('f32', [1, 1, 1, 3], [0.3611, 0, -0.7222]);
    const got = unscaleLatents(z, { scalingFactor: 0.3611, shiftFactor: 0.1159 });
    [1.1159, 0.1159, -1.8841].forEach((v, i) => expect(got.data[i]).toBeCloseTo(v, 6));
  });

  it('maps decoder values to bytes as the pipeline does: (x/2+0.5) clamped, *255, round half to even', () => {
    // -1 -> 0; 1 -> 255; 0 -> 127.5 -> 128 (even); 0.2 -> 0.6*255 = 153; beyond [-1, 1] clamps.
    expect([-1, 1, 0, 0.2, 3, -7].map(toByte)).toEqual([0, 255, 128, 153, 255, 0]);
    // 0.5 -> 0.75 * 255 = 191.25 -> 191; -0.5 -> 63.75 -> 64.
    expect([0.5, -0.5].map(toByte)).toEqual([191, 64]);
  });

  it("unpacks FLUX's 2x2 patches: token i*(W/2)+j, channel c*4+dy*2+dx -> pixel (c, 2i+dy, 2j+dx)", () => {
    const C = 2;
    const H = 4;
    const W = 6;
    const tokens = (H / 2) * (W / 2);
    const packed = Tensor.from('f32', [1, tokens, C * 4], Array.from({ length: tokens * C * 4 }, (_, k) => Math.floor(k / (C * 4)) * 100 + (k % (C * 4))));
    const x = toVaeLatent(packed, [1, C, H, W]);
    expect(x.shape).toEqual([1, C, H, W]);
    // pixel (c=1, y=3, x=4): i=1, dy=1, j=2, dx=0 -> token 1*3+2 = 5, channel 1*4+1*2+0 = 6.
    expect(x.data[(1 * H + 3) * W + 4]).toBe(506);
    // pixel (c=0, y=0, x=1): token 0, channel 1.
    expect(x.data[1]).toBe(1);
    // NCHW of the right shape passes through.
    expect(toVaeLatent(x, [1, C, H, W]).data).toEqual(x.data);
  });

  it('refuses a latent that is neither the NCHW shape nor its packed form, naming both', () => {
    const t = Tensor.zeros('f32', [1, 16, 8]);
    expect(() => toVaeLatent(t, [1, 16, 8, 8], 'the latent')).toThrow(/the latent is f32\[1,16,8\], but the VAE decoder takes \[1,16,8,8\] \(NCHW\) or FLUX's packed \[1,16,64\]/);
  });

  it('writes a batch as FILE-0.png, FILE-1.png with the mapped pixels, through temporary files', () => {
    const dir = tempDir('decode-batch');
    // Two 1x2 RGB images: batch b, channel c, column x holds (b - 0.5 + 0.25 * c) * x.
    const vals: number[] = [];
    for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) for (let x = 0; x < 2; x++) vals.push((b - 0.5 + 0.25 * c) * x);
    const images = imagesFromDecoded(Tensor.from('f32', [2, 3, 1, 2], vals));
    const files = imageFileNames(path.join(dir, 'out.png'), 2);
    expect(files.map((f) => path.basename(f))).toEqual(['out-0.png', 'out-1.png']);
    writePngFiles(files, images);
    expect(fs.readdirSync(dir).sort()).toEqual(['out-0.png', 'out-1.png']);
    // image 1, pixel x=1: values 0.5, 0.75, 1.0 -> 191.25 -> 191, 223.125 -> 223, 255.
    const img1 = readPng(files[1]!);
    expect([...img1.data.slice(3, 6)]).toEqual([191, 223, 255]);
    expect([...readPng(files[0]!).data.slice(0, 3)]).toEqual([128, 128, 128]);
  });
});

describe.each(FOLDERS)('decode %s to PNG against PyTorch', (folder) => {
  const ref = referenceImage(folder);
  const model = path.join(VAE, folder);

  it.each(['f32', 'bf16'] as const)(`a %s plan on the CPU backend: PSNR >= ${MIN_PSNR} dB`, async (dtype) => {
    const dir = tempDir(`decode-${dtype}`);
    const plan = path.join(dir, 'plan');
    await compileToPlan(model, plan, { dtype, nvcc: false });
    const out = path.join(dir, 'image.png');
    const r = await runDecode(plan, { latents: latentFile(folder), output: out, latentScaling: false });
    expect(r.files).toEqual([out]);
    expect(r.ran).toBe(`plan ${dtype} on cpu`);
    const got = readPng(out);
    expect([got.width, got.height]).toEqual([16, 16]);
    expect(psnr8(got, ref)).toBeGreaterThanOrEqual(MIN_PSNR);
  });

  it('the model folder on the interpreter: PSNR >= 40 dB; with the (wrong) latent scaling it is far off', async () => {
    const dir = tempDir('decode-interp');
    const out = path.join(dir, 'image.png');
    await runDecode(model, { latents: latentFile(folder), output: out, latentScaling: false });
    expect(psnr8(readPng(out), ref)).toBeGreaterThanOrEqual(MIN_PSNR);
    // The comparison can fail: scaling an already-scaled latent again changes the picture.
    const scaled = path.join(dir, 'scaled.png');
    const r = await runDecode(model, { latents: latentFile(folder), output: scaled });
    expect(r.latentScaling).toEqual({ scalingFactor: 0.3611, shiftFactor: 0.1159 });
    expect(psnr8(readPng(scaled), ref)).toBeLessThan(25);
  });
});

describe('paradit decode: bad input exits 2 and writes nothing', () => {
  const model = path.join(VAE, FOLDERS[0]!);
  beforeAll(() => ensureCli());

  it('a latent of the wrong shape names the expected and the given shape', () => {
    const dir = tempDir('decode-shape');
    const z = path.join(dir, 'z.pb');
    writeTensorFile(z, Tensor.zeros('f32', [1, 16, 4, 4]), 'z');
    const out = path.join(dir, 'image.png');
    const msg = expectUserError(runCli(['decode', model, '--latents', z, '-o', out]));
    expect(msg).toMatch(/--latents .*z\.pb is f32\[1,16,4,4\], but the VAE decoder takes \[1,16,8,8\] \(NCHW\)/);
    expect(fs.readdirSync(dir)).toEqual(['z.pb']);
  });

  it('an integer latent is refused with the decoder input it should match', () => {
    const dir = tempDir('decode-dtype');
    const z = path.join(dir, 'z.pb');
    writeTensorFile(z, Tensor.zeros('i64', [1, 16, 8, 8]), 'z');
    const msg = expectUserError(runCli(['decode', model, '--latents', z, '-o', path.join(dir, 'a.png')]));
    expect(msg).toMatch(/holds i64\[1,16,8,8\], but the decoder's input 'z' is f32\[1,16,8,8\]; write the latent as float data/);
  });

  it('an unwritable -o is refused before decoding; a folder as -o too', () => {
    const dir = tempDir('decode-out');
    expect(expectUserError(runCli(['decode', model, '--latents', latentFile(FOLDERS[0]!), '-o', path.join(dir, 'missing', 'a.png')]))).toMatch(/the folder .*missing does not exist/);
    expect(expectUserError(runCli(['decode', model, '--latents', latentFile(FOLDERS[0]!), '-o', dir]))).toMatch(/it is a folder; pass a file path/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('contradicting scaling flags and a non-numeric factor are refused', () => {
    const dir = tempDir('decode-flags');
    const base = ['decode', model, '--latents', latentFile(FOLDERS[0]!), '-o', path.join(dir, 'a.png')];
    expect(expectUserError(runCli([...base, '--no-latent-scaling', '--shift-factor', '0']))).toMatch(/contradict/);
    expect(expectUserError(runCli([...base, '--scaling-factor', 'x']))).toMatch(/--scaling-factor must be a number, got 'x'/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('decodes through the bundled CLI and says what it did', () => {
    const dir = tempDir('decode-cli');
    const out = path.join(dir, 'a.png');
    const r = runCli(['decode', model, '--latents', latentFile(FOLDERS[0]!), '-o', out, '--no-latent-scaling', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { files: string[]; latentScaling: unknown; image: { shape: number[] } };
    expect(j).toMatchObject({ files: [out], latentScaling: null, image: { shape: [1, 3, 16, 16] } });
    expect(fs.readdirSync(dir)).toEqual(['a.png']);
  });
});
