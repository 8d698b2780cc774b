/**
 * ONNX external data: initializers whose bytes live in a side file (`data_location = EXTERNAL`,
 * `external_data` = {location, offset, length}). Reading is tensor by tensor with one positioned
 * read of exactly the tensor's bytes (offsets may lie beyond 2 GiB), never the whole file, so a
 * model can be inspected without touching its weights. The writer appends tensors to a side file
 * for export.
 */
import * as fs from 'fs';
import * as path from 'path';
import { IrError } from '../errors';
import type { StringEntryP, TensorP } from './proto';

/** Where one tensor's bytes are. `length` is undefined when the model leaves it implicit. */
interface ExternalRef {
  /** The `location` value as written in the model (relative to the model's folder). */
  readonly location: string;
  /** Absolute path of the data file. */
  readonly file: string;
  readonly offset: number;
  readonly length: number | undefined;
}

function entry(entries: readonly StringEntryP[], key: string): string | undefined {
  for (const e of entries) if (e.key === key) return e.value ?? '';
  return undefined;
}

function parseSize(s: string | undefined, key: string, what: string): number | undefined {
  if (s === undefined) return undefined;
  if (!/^\d+$/.test(s.trim())) {
    throw new IrError('E_PARSE', `${what}: external_data '${key}' must be a non-negative integer, got '${s}'`);
  }
  const n = Number(s.trim());
  if (!Number.isSafeInteger(n)) throw new IrError('E_PARSE', `${what}: external_data '${key}' = ${s} is too large`);
  return n;
}

/**
 * Reads a tensor's external_data entries. `baseDir` is the folder of the model file; `what` names
 * the tensor in messages ("initializer 'w'").
 */
export function parseExternalRef(tp: TensorP, baseDir: string | undefined, what: string): ExternalRef {
  const entries = tp.externalData ?? [];
  const location = entry(entries, 'location');
  if (!location) throw new IrError('E_PARSE', `${what} has data_location EXTERNAL but no external_data 'location'`);
  if (baseDir === undefined) {
    throw new IrError(
      'E_INPUT',
      `${what} keeps its data in external file '${location}', but the model was given as bytes without a folder; ` +
        'load it from a file (loadModel) or pass baseDir',
    );
  }
  return {
    location,
    file: containedFile(baseDir, location, what),
    offset: parseSize(entry(entries, 'offset'), 'offset', what) ?? 0,
    length: parseSize(entry(entries, 'length'), 'length', what),
  };
}

/**
 * The file an external_data `location` names, refused (exit 2) when it may leave the model's
 * folder: an absolute path, a relative path that resolves outside it, or a path whose real
 * location (symlinks followed) is outside it. ONNX's own loader refuses the same since
 * CVE-2022-25882; without this, a model could make ParaDiT read any file as weights.
 */
function containedFile(baseDir: string, location: string, what: string): string {
  const fix = `keep the weights file inside the model's folder and name it relative to that folder (e.g. 'model.onnx.data')`;
  const refuse = (why: string): never => {
    throw new IrError('E_INPUT', `${what}: external_data location '${location}' ${why}; ParaDiT reads external data only from inside the model's folder (as ONNX does since CVE-2022-25882): ${fix}`);
  };
  if (location.includes('\0')) refuse('contains a NUL byte');
  if (path.isAbsolute(location) || path.win32.isAbsolute(location)) refuse('is an absolute path');
  const base = path.resolve(baseDir);
  const file = path.resolve(base, location);
  const inside = (root: string, p: string): boolean => {
    const rel = path.relative(root, p);
    return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
  };
  if (!inside(base, file)) refuse(`resolves to ${file}, outside the model's folder ${base}`);
  let real: string | undefined;
  try {
    real = fs.realpathSync(file);
  } catch {
    real = undefined; // missing: reported as a missing weights file where it is needed
  }
  if (real !== undefined && !inside(fs.realpathSync(base), real)) refuse(`is a symbolic link to ${real}, outside the model's folder ${base}`);
  return file;
}

/**
 * Reads `expectedBytes` bytes of one tensor with a positioned read. The result is a fresh buffer
 * of exactly that length (it may not be aligned for typed-array views; callers copy as needed).
 */
export function readExternalBytes(ref: ExternalRef, expectedBytes: number, what: string): Uint8Array {
  if (ref.length !== undefined && ref.length !== expectedBytes) {
    throw new IrError(
      'E_INPUT',
      `${what}: external_data length is ${ref.length} bytes, but its dtype and shape need ${expectedBytes}`,
    );
  }
  let fd: number;
  try {
    fd = fs.openSync(ref.file, 'r');
  } catch (e) {
    throw new IrError(
      'E_INPUT',
      `${what} keeps its data in '${ref.file}', which cannot be opened (${(e as Error).message}); ` +
        'put the weights file next to the model, or pass --random-weights to compile with seeded random weights (benchmarking)',
    );
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (ref.offset + expectedBytes > size) {
      throw new IrError(
        'E_INPUT',
        `${what} needs bytes ${ref.offset}..${ref.offset + expectedBytes} of '${ref.file}', but the file has ${size} bytes; ` +
          'the weights file is truncated or belongs to another model',
      );
    }
    const buf = Buffer.allocUnsafeSlow(expectedBytes);
    let done = 0;
    while (done < expectedBytes) {
      // One read(2) moves at most ~2 GiB on Linux; loop until the tensor is complete.
      const chunk = Math.min(expectedBytes - done, 1 << 30);
      const n = fs.readSync(fd, buf, done, chunk, ref.offset + done);
      if (n <= 0) throw new IrError('E_INPUT', `${what}: unexpected end of '${ref.file}' at byte ${ref.offset + done}`);
      done += n;
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, expectedBytes);
  } finally {
    fs.closeSync(fd);
  }
}

/** Appends tensors to one external data file (export). Offsets are aligned for mmap-friendly reads. */
export class ExternalDataWriter {
  private fd: number | undefined;
  private offset = 0;

  /**
   * @param file path of the data file to create (truncated if it exists)
   * @param location the name the model records for it (relative to the model's folder)
   */
  constructor(
    readonly file: string,
    readonly location: string,
    private readonly align = 64,
  ) {}

  /** Writes the bytes and returns the external_data entries that point at them. */
  append(bytes: Uint8Array): StringEntryP[] {
    if (this.fd === undefined) this.fd = fs.openSync(this.file, 'w');
    const pad = (this.align - (this.offset % this.align)) % this.align;
    if (pad > 0) {
      fs.writeSync(this.fd, new Uint8Array(pad), 0, pad, this.offset);
      this.offset += pad;
    }
    const start = this.offset;
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(this.fd, bytes, done, bytes.length - done, start + done);
    this.offset += bytes.length;
    return [
      { key: 'location', value: this.location },
      { key: 'offset', value: String(start) },
      { key: 'length', value: String(bytes.length) },
    ];
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}
