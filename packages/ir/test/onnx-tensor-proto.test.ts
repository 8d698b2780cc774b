/** TensorProto <-> Tensor: every dtype and data field, alignment, int64 handling, external data, test-data files. */
import * as fs from 'fs';
import * as path from 'path';
import { ALL_DTYPES, DType, Tensor, allocData, dtypeToOnnx, f32ToBf16Bits, f32ToF16Bits, f32ToFp8Bits, isFloat } from '../src';
import { decodeRawData, encodeRawData, readNamedTensorFile, readTensorFile, tensorFromProto, tensorToProto, writeTensorFile } from '../src/onnx/tensor-proto';
import { TensorP, decodeTensor, encodeTensor, int64ToNumber } from '../src/onnx/proto';
import { irErrorOf, tempDir } from './onnx-test-helpers';

/** Sample values per dtype, all exactly representable in it (so round trips must be exact). */
const SAMPLES: Record<DType, number[]> = {
  f32: [1.5, -2.25, 3e-8, 1e30, NaN, -Infinity, 0],
  f64: [1.1, -1e300, 5e-324, NaN],
  f16: [1, -2, 0.5, 65504, 2 ** -24, NaN, Infinity],
  bf16: [1, -2, 3, 2 ** 100, NaN, -0.0078125],
  f8e4m3fn: [1, -2, 0.5, 448, -0.001953125],
  f8e4m3fnuz: [1, -2, 0.5, 240],
  f8e5m2: [1, -2, 57344, -Infinity, 2 ** -16],
  f8e5m2fnuz: [1, -2, 57344, 2 ** -17],
  i8: [-128, 127, 0, -1],
  u8: [0, 255, 7],
  i16: [-32768, 32767, -300],
  u16: [0, 65535, 60000],
  i32: [-(2 ** 31), 2 ** 31 - 1, -5],
  u32: [0, 2 ** 32 - 1, 12345],
  i64: [-(2 ** 53) + 1, 2 ** 53 - 1, -1, 2 ** 40 + 5],
  u64: [0, 2 ** 53 - 1, 2 ** 33],
  bool: [1, 0, 1],
};

/** A tensor from values already exact in `dtype` (no rounding, so -inf stays -inf in e5m2). */
function exact(dtype: DType, shape: number[], values: number[]): Tensor {
  const data = allocData(dtype, values.length);
  data.set(values);
  return new Tensor(dtype, shape, data);
}

function expectSameTensor(got: Tensor, want: Tensor): void {
  expect(got.dtype).toBe(want.dtype);
  expect(got.shape).toEqual(want.shape);
  expect(got.data.constructor).toBe(want.data.constructor);
  // toEqual treats NaN as equal to NaN and distinguishes nothing else we care about.
  expect(Array.from(got.data)).toEqual(Array.from(want.data));
}

/** The typed (non-raw) field ONNX uses for a dtype, filled from values. */
function typedProto(dtype: DType, values: number[]): TensorP {
  const tp: TensorP = { name: 't', dims: [values.length], dataType: dtypeToOnnx(dtype) };
  if (dtype === 'f32') tp.floatData = values;
  else if (dtype === 'f64') tp.doubleData = values;
  else if (dtype === 'i64') tp.int64Data = values;
  else if (dtype === 'u32' || dtype === 'u64') tp.uint64Data = values;
  else if (dtype === 'f16') tp.int32Data = values.map(f32ToF16Bits);
  else if (dtype === 'bf16') tp.int32Data = values.map(f32ToBf16Bits);
  else if (isFloat(dtype)) tp.int32Data = values.map((v) => f32ToFp8Bits(dtype, v, false));
  else tp.int32Data = values;
  return tp;
}

describe('TensorProto round trips', () => {
  for (const dtype of ALL_DTYPES) {
    const want = exact(dtype, [SAMPLES[dtype].length], SAMPLES[dtype]);
    test(`${dtype}: raw_data through protobuf bytes`, () => {
      const bytes = encodeTensor(tensorToProto(want, 'w'));
      const tp = decodeTensor(bytes, 'test');
      expect(tp.name).toBe('w');
      expectSameTensor(tensorFromProto(tp), want);
    });
    test(`${dtype}: typed data field through protobuf bytes`, () => {
      const tp = decodeTensor(encodeTensor(typedProto(dtype, SAMPLES[dtype])), 'test');
      expect(tp.rawData?.length ?? 0).toBe(0);
      expectSameTensor(tensorFromProto(tp), want);
    });
  }

  test('rank-2 and empty tensors keep their shapes', () => {
    const t = Tensor.from('f32', [2, 3], [1, 2, 3, 4, 5, 6]);
    expectSameTensor(tensorFromProto(decodeTensor(encodeTensor(tensorToProto(t, 'a')), 'x')), t);
    const e = Tensor.zeros('i64', [0, 4]);
    expectSameTensor(tensorFromProto(decodeTensor(encodeTensor(tensorToProto(e, 'e')), 'x')), e);
    const s = Tensor.scalar('bf16', 1.5);
    expectSameTensor(tensorFromProto(decodeTensor(encodeTensor(tensorToProto(s, 's')), 'x')), s);
  });
});

describe('raw_data bytes (hand-computed little-endian patterns)', () => {
  const cases: [DType, number[], number[]][] = [
    ['f16', [1, -2, 2 ** -24], [0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00]],
    ['bf16', [1, -2, 3], [0x80, 0x3f, 0x00, 0xc0, 0x40, 0x40]],
    ['f8e4m3fn', [1, -2, 448, 0.5], [0x38, 0xc0, 0x7e, 0x30]],
    ['f8e4m3fnuz', [1], [0x40]],
    ['f8e5m2', [1, -Infinity], [0x3c, 0xfc]],
    ['f8e5m2fnuz', [1], [0x40]],
    ['i64', [-2, 2 ** 40 + 5], [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x05, 0, 0, 0, 0, 0x01, 0, 0]],
    ['u16', [60000], [0x60, 0xea]],
    ['i32', [-2], [0xfe, 0xff, 0xff, 0xff]],
    ['bool', [1, 0], [1, 0]],
    ['f32', [1], [0, 0, 0x80, 0x3f]],
  ];
  for (const [dtype, values, bytes] of cases) {
    test(`${dtype} ${values.join(',')}`, () => {
      const t = exact(dtype, [values.length], values);
      expect(Array.from(encodeRawData(t))).toEqual(bytes);
      expect(Array.from(decodeRawData(dtype, Uint8Array.from(bytes), values.length))).toEqual(values);
    });
  }
});

describe('alignment and int64', () => {
  test('raw_data at an odd offset inside a larger buffer decodes correctly', () => {
    const values = [1.25, -7, 1e-3, 42];
    const payload = encodeRawData(Tensor.from('f32', [4], values));
    for (const dtype of ['f32', 'f64', 'i64', 'bf16'] as DType[]) {
      const t = Tensor.from(dtype, [4], values.map(Math.round));
      const raw = encodeRawData(t);
      const big = new Uint8Array(raw.length + 3);
      big.set(raw, 1);
      const view = big.subarray(1, 1 + raw.length);
      expect(view.byteOffset % 2).toBe(1);
      expectSameTensor(tensorFromProto({ name: 'o', dims: [4], dataType: dtypeToOnnx(dtype), rawData: view }), t);
    }
    expect(payload.length).toBe(16);
  });

  test('int64 Long objects convert exactly below 2^53 and clamp beyond', () => {
    expect(int64ToNumber({ low: 5, high: 256, unsigned: false })).toBe(2 ** 40 + 5);
    expect(int64ToNumber({ low: -1, high: -1, unsigned: false })).toBe(-1);
    expect(int64ToNumber({ low: -2, high: -1, unsigned: false })).toBe(-2);
    expect(int64ToNumber({ low: -1, high: 0x7fffffff, unsigned: false })).toBe(Number.MAX_SAFE_INTEGER); // INT64_MAX
    expect(int64ToNumber({ low: 0, high: 0x80000000 | 0, unsigned: false })).toBe(-Number.MAX_SAFE_INTEGER); // INT64_MIN
    expect(int64ToNumber({ low: -1, high: -1, unsigned: true })).toBe(Number.MAX_SAFE_INTEGER); // UINT64_MAX
    expect(int64ToNumber({ low: -1, high: 0x1fffff, unsigned: false })).toBe(2 ** 53 - 1);
    expect(int64ToNumber(7)).toBe(7);
    expect(int64ToNumber(null)).toBe(0);
  });

  test('int64_data written as Long and INT64_MAX raw bytes clamp to the safe range', () => {
    const max = { low: -1, high: 0x7fffffff, unsigned: false };
    const tp = decodeTensor(encodeTensor({ name: 'l', dims: [3], dataType: 7, int64Data: [max, -3, { low: 9, high: 1, unsigned: false }] }), 'x');
    expect(tensorFromProto(tp).toArray()).toEqual([Number.MAX_SAFE_INTEGER, -3, 2 ** 32 + 9]);
    const raw = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x80]);
    expect(Array.from(decodeRawData('i64', raw, 2))).toEqual([Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER]);
  });
});

describe('errors', () => {
  test('STRING tensors are unsupported, with the tensor named', () => {
    const e = irErrorOf(() => tensorFromProto({ name: 'words', dims: [1], dataType: 8, stringData: [Uint8Array.from([65])] }));
    expect(e.code).toBe('E_UNSUPPORTED');
    expect(e.message).toMatch(/'words' is a STRING tensor/);
  });
  test('unsupported data types are named', () => {
    const e = irErrorOf(() => tensorFromProto({ name: 'c', dims: [1], dataType: 14, floatData: [1, 2] }));
    expect(e.code).toBe('E_UNSUPPORTED');
    expect(e.message).toMatch(/COMPLEX64/);
  });
  test('raw_data of the wrong size is a parse error', () => {
    const e = irErrorOf(() => tensorFromProto({ name: 'r', dims: [3], dataType: 1, rawData: new Uint8Array(8) }));
    expect(e.code).toBe('E_PARSE');
    expect(e.message).toMatch(/raw_data has 8 bytes, but f32\[3\] needs 12/);
  });
  test('a typed field of the wrong length is a parse error', () => {
    const e = irErrorOf(() => tensorFromProto({ name: 'f', dims: [2, 2], dataType: 1, floatData: [1, 2, 3] }));
    expect(e.code).toBe('E_PARSE');
    expect(e.message).toMatch(/float_data has 3 values, but its shape needs 4/);
  });
});

describe('external data', () => {
  const dir = tempDir('ext');
  const t = Tensor.from('bf16', [2, 3], [1, -2, 0.5, 3, 4, -8]);
  const raw = encodeRawData(t);
  const file = path.join(dir, 'w.bin');
  fs.writeFileSync(file, Buffer.concat([Buffer.alloc(1001, 7), Buffer.from(raw), Buffer.alloc(5)]));
  const ext = (entries: Record<string, string>): TensorP => ({
    name: 'w',
    dims: [2, 3],
    dataType: 16,
    dataLocation: 1,
    externalData: Object.entries(entries).map(([key, value]) => ({ key, value })),
  });

  test('reads one tensor at an odd offset, with and without an explicit length', () => {
    expectSameTensor(tensorFromProto(ext({ location: 'w.bin', offset: '1001', length: String(raw.length) }), { baseDir: dir }), t);
    expectSameTensor(tensorFromProto(ext({ location: 'w.bin', offset: '1001' }), { baseDir: dir }), t);
  });

  test('reads at an offset beyond 2 GiB (sparse file)', () => {
    const big = path.join(dir, 'big.bin');
    const offset = 2 ** 31 + 12345;
    const fd = fs.openSync(big, 'w');
    fs.writeSync(fd, raw, 0, raw.length, offset);
    fs.closeSync(fd);
    expectSameTensor(tensorFromProto(ext({ location: 'big.bin', offset: String(offset) }), { baseDir: dir }), t);
    fs.unlinkSync(big);
  });

  test('wrong length, short file and missing file are input errors naming the tensor', () => {
    const wrong = irErrorOf(() => tensorFromProto(ext({ location: 'w.bin', offset: '0', length: '10' }), { baseDir: dir }));
    expect(wrong.code).toBe('E_INPUT');
    expect(wrong.message).toMatch(/length is 10 bytes, but its dtype and shape need 12/);
    const short = irErrorOf(() => tensorFromProto(ext({ location: 'w.bin', offset: '1010' }), { baseDir: dir }));
    expect(short.message).toMatch(/needs bytes 1010\.\.1022 of .*w\.bin', but the file has 1018 bytes/);
    const missing = irErrorOf(() => tensorFromProto(ext({ location: 'nope.bin' }), { baseDir: dir }));
    expect(missing.code).toBe('E_INPUT');
    expect(missing.message).toContain(path.join(dir, 'nope.bin'));
    expect(missing.message).toContain("tensor 'w'");
  });
});

describe('tensor files (model-zoo test data)', () => {
  test('writeTensorFile / readTensorFile round trip keeps name, dtype, shape and data', () => {
    const dir = tempDir('pb');
    const f = path.join(dir, 'input_0.pb');
    const t = Tensor.from('i64', [2, 2], [1, -2, 3, 2 ** 50]);
    writeTensorFile(f, t, 'ids');
    expectSameTensor(readTensorFile(f), t);
    expect(readNamedTensorFile(f).name).toBe('ids');
  });

  test('a missing or corrupt tensor file is a readable error', () => {
    const dir = tempDir('pb');
    expect(irErrorOf(() => readTensorFile(path.join(dir, 'none.pb'))).code).toBe('E_INPUT');
    fs.writeFileSync(path.join(dir, 'bad.pb'), Uint8Array.from([0x0a, 0xff, 0xff, 0x01]));
    const e = irErrorOf(() => readTensorFile(path.join(dir, 'bad.pb')));
    expect(e.code).toBe('E_PARSE');
    expect(e.message).toMatch(/bad\.pb is not a valid ONNX TensorProto/);
  });
});
