/**
 * The flash-attention kernel generator: spec and launch validation, the argument contract with the
 * lowering, and (where nvcc is installed) that generated sources for representative specs compile
 * for sm_90a without register spills or serialized wgmma. Numerics are checked on the GPU by
 * bench/attention (no GPU in CI).
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AttentionError, emitAttention } from '../src/kernels/attention';
import type { AttentionLaunch, AttentionSpec, AttentionTuning } from '../src/kernels/attention';
import { KERNEL_HEADER } from '../src/kernels/header';
import { skipReason } from '../../../tests/skip-reason';

const BF16_D128: AttentionSpec = { dtype: 'bf16', headDim: 128, mask: 'none', withLse: false };

/** q/k/v/o read inside [B, S, N*H] buffers (the layout the lowering folds transposes into). */
function packedLaunch(over: Partial<AttentionLaunch> = {}): AttentionLaunch {
  const [n, nkv, h, sq, skv] = [24, 24, 128, 4608, 4608];
  return {
    batch: 1,
    heads: n,
    kvHeads: nkv,
    sq,
    skv,
    scale: 1 / Math.sqrt(h),
    q: { b: sq * n * h, h, s: n * h },
    k: { b: skv * nkv * h, h, s: nkv * h },
    v: { b: skv * nkv * h, h, s: nkv * h },
    o: { b: sq * n * h, h, s: n * h },
    ...over,
  };
}

describe('emitAttention: spec validation', () => {
  const bad: Array<[string, AttentionSpec, RegExp]> = [
    ['head dim 96', { ...BF16_D128, headDim: 96 }, /expected headDim 64 or 128, got 96/],
    ['head dim V 256', { ...BF16_D128, headDimV: 256 }, /expected headDimV 64 or 128, got 256/],
    ['dtype f32', { ...BF16_D128, dtype: 'f32' as unknown as 'bf16' }, /expected dtype 'bf16' or 'f16', got 'f32'/],
    ['unknown mask', { ...BF16_D128, mask: 'causal' as unknown as 'none' }, /expected mask one of .*got 'causal'/],
  ];
  it.each(bad)('rejects %s with a readable error', (_name, spec, message) => {
    expect(() => emitAttention(spec)).toThrow(AttentionError);
    expect(() => emitAttention(spec)).toThrow(message);
  });

  it('rejects tunings it cannot build', () => {
    expect(() => emitAttention(BF16_D128, { stages: 4 })).toThrow(/expected stages 2 or 3, got 4/);
    expect(() => emitAttention(BF16_D128, { bn: 100 })).toThrow(/multiple of 16 in \[64, 256\], got 100/);
    expect(() => emitAttention(BF16_D128, { bn: 256, stages: 3 })).toThrow(/exceed the 227 KiB/);
  });
});

describe('emitAttention: launch contract', () => {
  it('lays out the arguments in parameter order with scale in log2 units', () => {
    const kernel = emitAttention({ dtype: 'f16', headDim: 64, mask: 'additive-f32', withLse: true });
    const args = kernel.args({
      batch: 2,
      heads: 8,
      kvHeads: 2,
      sq: 100,
      skv: 77,
      scale: 0.125,
      q: { b: 51200, h: 6400, s: 64 },
      k: { b: 9856, h: 4928, s: 64 },
      v: { b: 9856, h: 4928, s: 64 },
      o: { b: 51200, h: 64, s: 512 },
      mask: { b: 0, h: 0, q: 77, k: 1 },
    });
    expect(args).toEqual([
      { kind: 'ptr', name: 'q' },
      { kind: 'ptr', name: 'k' },
      { kind: 'ptr', name: 'v' },
      { kind: 'ptr', name: 'o' },
      { kind: 'ptr', name: 'mask' },
      { kind: 'ptr', name: 'lse' },
      { kind: 'i32', v: 8 },
      { kind: 'i32', v: 4 }, // query heads per kv head
      { kind: 'i32', v: 100 },
      { kind: 'i32', v: 77 },
      { kind: 'f32', v: 0.125 * Math.LOG2E },
      ...[51200, 6400, 64, 9856, 4928, 64, 9856, 4928, 64, 51200, 64, 512, 0, 0, 77, 1].map((v) => ({ kind: 'i64', v })),
    ]);
  });

  it('covers every query row with one block of 128 rows per (tile, head, batch)', () => {
    const kernel = emitAttention(BF16_D128);
    expect(kernel.grid({ batch: 3, heads: 24, sq: 4608 })).toEqual([36, 24, 3]);
    expect(kernel.grid({ batch: 1, heads: 2, sq: 129 })).toEqual([2, 2, 1]);
    expect(kernel.block).toEqual([384, 1, 1]);
    expect(kernel.smem).toBeGreaterThan(48 * 1024);
    expect(kernel.smem).toBeLessThanOrEqual(227 * 1024);
  });

  it('rejects launches the kernel cannot run, saying why', () => {
    const kernel = emitAttention(BF16_D128);
    expect(() => kernel.args(packedLaunch({ kvHeads: 5 }))).toThrow(/24 heads are not a multiple of 5 kv heads/);
    expect(() => kernel.args(packedLaunch({ q: { b: 4608 * 3072, h: 128, s: 3070 } }))).toThrow(/q stride 's' = 3070 is not a multiple of 8 elements/);
    expect(() => kernel.args(packedLaunch({ scale: -1 }))).toThrow(/expected a finite scale > 0, got -1/);
    expect(() => kernel.args(packedLaunch({ mask: { b: 0, h: 0, q: 1, k: 1 } }))).toThrow(/spec has mask 'none'/);
    const masked = emitAttention({ ...BF16_D128, mask: 'bool' });
    expect(() => masked.args(packedLaunch())).toThrow(/has mask 'bool' but the launch gives no mask strides/);
    // A masked kernel scales after masking, so any finite scale works there.
    expect(() => masked.args(packedLaunch({ scale: -1, mask: { b: 0, h: 0, q: 4608, k: 1 } }))).not.toThrow();
  });
});

describe('emitAttention: generated source', () => {
  it('uses wgmma for both products, with the dtype and the tile width of the spec', () => {
    const bf = emitAttention(BF16_D128).source;
    expect(bf).toContain('wgmma.mma_async.sync.aligned.m64n160k16.f32.bf16.bf16'); // S = Q K^T, 160 keys
    expect(bf).toContain('wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16'); // O += P V
    const f16 = emitAttention({ dtype: 'f16', headDim: 64, headDimV: 128, mask: 'bool', withLse: true }).source;
    expect(f16).toContain('m64n128k16.f32.f16.f16');
    expect(f16).not.toContain('.bf16.bf16');
  });

  it('needs nothing NVRTC lacks (regression: INFINITY is a host math.h macro)', () => {
    for (const mask of ['none', 'bool', 'additive-f32'] as const) {
      const src = emitAttention({ ...BF16_D128, mask }).source;
      expect(src).not.toMatch(/\bINFINITY\b/);
      expect(src.match(/#include <[^>]+>/g)).toEqual(['#include <cuda_bf16.h>', '#include <cuda_fp16.h>']);
    }
  });

  it('names kernels by spec and tuning, so different kernels never share an entry', () => {
    const names = [
      emitAttention(BF16_D128).entry,
      emitAttention({ ...BF16_D128, withLse: true }).entry,
      emitAttention({ ...BF16_D128, headDimV: 64 }).entry,
      emitAttention({ ...BF16_D128, mask: 'additive-bf16' }).entry,
      emitAttention(BF16_D128, { stages: 3, bn: 128 }).entry,
      emitAttention(BF16_D128, { bn: 128 }).entry,
    ];
    expect(new Set(names).size).toBe(names.length);
    expect(names[0]).toBe('paradit_attn_fwd_bf16_d128_none');
  });
});

function findNvcc(): string | undefined {
  for (const candidate of ['nvcc', '/usr/local/cuda/bin/nvcc', '/usr/local/bin/nvcc']) {
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // try the next location
    }
  }
  return undefined;
}

interface Unit {
  readonly name: string;
  readonly kernels: ReadonlyArray<readonly [AttentionSpec, AttentionTuning?]>;
}

/** Representative specs, two modules compiled in parallel; each module also holds the shared
 *  kernel header, as the plan's module.cu does, so name clashes with other kernels show up. */
const UNITS: readonly Unit[] = [
  {
    name: 'fast',
    kernels: [[BF16_D128], [{ dtype: 'f16', headDim: 64, mask: 'none', withLse: true }], [BF16_D128, { stages: 3, bn: 128 }]],
  },
  {
    name: 'masked',
    kernels: [
      [{ dtype: 'f16', headDim: 64, mask: 'bool', withLse: true }],
      [{ dtype: 'bf16', headDim: 128, headDimV: 64, mask: 'additive-f32', withLse: true }],
      [{ dtype: 'f16', headDim: 128, mask: 'additive-bf16', withLse: false }],
    ],
  },
];

const nvcc = findNvcc();
const describeNvcc = nvcc ? describe : describe.skip;
if (!nvcc) skipReason(__filename, 'nvcc not found on PATH or in /usr/local; skipping the sm_90a compile checks');

describeNvcc('emitAttention: sources compile for sm_90a with nvcc', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-attn-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const compile = (unit: Unit): Promise<{ code: number; log: string; entries: string[] }> => {
    const kernels = unit.kernels.map(([spec, tuning]) => emitAttention(spec, tuning));
    const cu = path.join(dir, `${unit.name}.cu`);
    fs.writeFileSync(cu, [KERNEL_HEADER, ...kernels.map((k) => k.source)].join('\n'));
    const args = ['-gencode', 'arch=compute_90a,code=sm_90a', '-std=c++17', '-cubin', '-Xptxas', '-v', '-o', cu.replace(/\.cu$/, '.cubin'), cu];
    return new Promise((resolve) => {
      execFile(nvcc!, args, { maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ code: typeof code === 'number' ? code : 1, log: stdout + stderr, entries: kernels.map((k) => k.entry) });
      });
    });
  };

  let results: Array<{ code: number; log: string; entries: string[] }> = [];
  beforeAll(async () => {
    results = await Promise.all(UNITS.map(compile));
  }, 120_000);

  it.each(UNITS.map((u, i) => [u.name, i] as const))('%s kernels build without spills or serialized wgmma', (_name, i) => {
    const { code, log, entries } = results[i]!;
    if (code !== 0) throw new Error(`nvcc failed:\n${log.slice(0, 4000)}`);
    for (const entry of entries) expect(log).toContain(`Compiling entry function '${entry}' for 'sm_90a'`);
    // Spills or wgmma serialization (C7510-C7514) would cost most of the kernel's speed. The
    // additive-mask kernels' producer (24 registers after setmaxnreg) spills one or two 4-byte values.
    const spills = [...log.matchAll(/(\d+) bytes spill stores/g)].map((m) => Number(m[1]));
    expect(spills).toHaveLength(entries.length);
    expect(Math.max(...spills)).toBeLessThanOrEqual(16);
    expect(log).not.toMatch(/wgmma.mma_async instructions are serialized/);
  });
});
