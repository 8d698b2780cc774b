/**
 * Step inputs and outputs <-> io-space bytes. Element encoding (bf16/f16 rounding to nearest even,
 * integer packing) is the shared plan/bytes.ts; this file adds the per-input checks that name the
 * input, so a wrong tensor fails before anything reaches the device. Pure.
 */
import { Tensor, numel } from '@paradit/ir';
import { decodeTensor, encodeTensor } from '../plan/bytes';
import type { BufferDecl } from '../plan/schema';

const FLOAT = new Set(['f32', 'f16', 'bf16']);

/** Packs an input tensor for its io buffer (converting floats to the buffer's dtype). */
export function inputBytes(t: Tensor, decl: BufferDecl, name: string): Uint8Array {
  const want = `${decl.dtype}[${decl.shape.join(', ')}]`;
  if (numel(t.shape) !== numel(decl.shape) || t.shape.length !== decl.shape.length || t.shape.some((d, i) => d !== decl.shape[i])) {
    throw new Error(`input '${name}': expected ${want}, got ${t.dtype}[${t.shape.join(', ')}]`);
  }
  const tFloat = FLOAT.has(t.dtype) || t.dtype === 'f64';
  if (tFloat !== FLOAT.has(decl.dtype)) throw new Error(`input '${name}': expected ${want}, got a ${t.dtype} tensor`);
  const bytes = encodeTensor(t, decl.dtype);
  if (bytes.byteLength !== decl.bytes) throw new Error(`input '${name}': ${bytes.byteLength} bytes encoded, its buffer holds ${decl.bytes}`);
  return bytes;
}

export function outputTensor(bytes: Uint8Array, decl: BufferDecl): Tensor {
  return decodeTensor(bytes, decl.dtype, decl.shape);
}
