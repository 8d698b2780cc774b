/**
 * Decoded images to PNG: the VAE image processor's postprocess ((x/2 + 0.5) clamped to [0, 1],
 * * 255, rounded, NCHW -> HWC) and a PNG file written through a temporary file and a rename, so a
 * failed write never leaves a half-written image. Pure JS (pngjs): a GPU server that installs only
 * the runtime can write images.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import { IrError } from '@paradit/ir';
import type { Tensor } from '@paradit/ir';

/** 8-bit pixels, row-major HWC with `channels` of 1 (gray), 3 (RGB) or 4 (RGBA). */
export interface Image8 {
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3 | 4;
  readonly data: Uint8Array;
}

/** Round half to even, as numpy's (and torch's) round. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** One decoder output value in [-1, 1] to a byte, in fp32 like the pipeline's numpy postprocess. */
export function toByte(x: number): number {
  const y = Math.min(1, Math.max(0, Math.fround(Math.fround(x / 2) + 0.5)));
  return roundHalfEven(Math.fround(y * 255));
}

/** A decoder output [B, C, H, W] (C = 1, 3 or 4) as B images. */
export function imagesFromDecoded(t: Tensor): Image8[] {
  const [B, C, H, W] = t.shape as [number, number, number, number];
  if (t.rank !== 4 || (C !== 1 && C !== 3 && C !== 4)) {
    throw new IrError('E_INPUT', `the decoder output is ${t.dtype}[${t.shape.join(',')}], but an image needs [B, C, H, W] with C = 1, 3 or 4 channels; decode with a VAE decoder model`);
  }
  const images: Image8[] = [];
  for (let b = 0; b < B; b++) {
    const data = new Uint8Array(H * W * C);
    for (let c = 0; c < C; c++) {
      const base = (b * C + c) * H * W;
      for (let p = 0; p < H * W; p++) data[p * C + c] = toByte(t.data[base + p]!);
    }
    images.push({ width: W, height: H, channels: C, data });
  }
  return images;
}

const COLOR_TYPE = { 1: 0, 3: 2, 4: 6 } as const;

export function encodePng(img: Image8): Buffer {
  const png = new PNG({ width: img.width, height: img.height });
  const n = img.width * img.height;
  for (let p = 0; p < n; p++) {
    const s = p * img.channels;
    const gray = img.channels === 1;
    png.data[p * 4] = img.data[s]!;
    png.data[p * 4 + 1] = img.data[gray ? s : s + 1]!;
    png.data[p * 4 + 2] = img.data[gray ? s : s + 2]!;
    png.data[p * 4 + 3] = img.channels === 4 ? img.data[s + 3]! : 255;
  }
  return PNG.sync.write(png, { colorType: COLOR_TYPE[img.channels] });
}

/** A PNG file's pixels as RGB (alpha dropped). */
export function decodePngRgb(buf: Buffer): Image8 {
  const png = PNG.sync.read(buf);
  const n = png.width * png.height;
  const data = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) data[p * 3 + c] = png.data[p * 4 + c]!;
  return { width: png.width, height: png.height, channels: 3, data };
}

/** Peak signal-to-noise ratio of two 8-bit images of one size, in dB (Infinity when equal). */
export function psnr8(a: Image8, b: Image8): number {
  if (a.width !== b.width || a.height !== b.height || a.channels !== b.channels) {
    throw new IrError('E_INPUT', `psnr: images differ in size: ${a.width}x${a.height}x${a.channels} vs ${b.width}x${b.height}x${b.channels}`);
  }
  let se = 0;
  for (let i = 0; i < a.data.length; i++) se += (a.data[i]! - b.data[i]!) ** 2;
  const mse = se / a.data.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

/**
 * The files a batch of `count` images goes to: `file` itself for one image, else
 * `stem-0.ext`, `stem-1.ext`, ... beside it.
 */
export function imageFileNames(file: string, count: number): string[] {
  if (count === 1) return [file];
  const ext = path.extname(file) || '.png';
  const stem = file.slice(0, file.length - path.extname(file).length);
  return Array.from({ length: count }, (_, i) => `${stem}-${i}${ext}`);
}

/**
 * Writes each image to its file through `FILE.tmp-PID` and a rename. On a failure every temporary
 * file is removed and the error names the path and a fix; the files already renamed stay (whole).
 */
export function writePngFiles(files: readonly string[], images: readonly Image8[]): void {
  const tmps: string[] = [];
  try {
    const encoded = images.map(encodePng);
    files.forEach((f, i) => {
      const tmp = `${f}.tmp-${process.pid}`;
      tmps.push(tmp);
      fs.writeFileSync(tmp, encoded[i]!);
    });
    files.forEach((f, i) => fs.renameSync(tmps[i]!, f));
  } catch (e) {
    for (const t of tmps) fs.rmSync(t, { force: true });
    const msg = e instanceof Error ? e.message : String(e);
    throw new IrError('E_INPUT', `-o ${files.join(', ')}: cannot write the image (${msg}); pass a path in a writable folder`);
  }
}
