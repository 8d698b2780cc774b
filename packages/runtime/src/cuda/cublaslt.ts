/**
 * cuBLASLt bindings: a prepared matmul (descriptors, layouts, heuristic algorithm) per gemm
 * instruction, built once at load time and launched on a stream (also inside graph capture).
 * Layout translation lives in gemm-layout.ts; this file only talks to the library.
 */
import { CudaError, InstrContext, cublasStatusName, formatCudaError } from './errors';
import { Library, NativeBlock, NativeFn, Ptr, openLibrary, toPtr, toolkitLibraryCandidates } from './ffi';
import { LtGemm, LtLayout, addressAlignment } from './gemm-layout';

/**
 * cublasLtMatmulDescAttributes_t. The FP8 ones (A/B_SCALE_POINTER 17/18, A/B_SCALE_MODE 31/32) are
 * from NVIDIA's nvmath-python enum docs and public cublasLt.h mirrors; this toolkit ships no
 * cublasLt.h to check them against (docs/fp8.md: unverified until the next GPU session).
 */
const DESC = { TRANSA: 3, TRANSB: 4, EPILOGUE: 7, BIAS_POINTER: 8, A_SCALE_POINTER: 17, B_SCALE_POINTER: 18, BIAS_DATA_TYPE: 26, A_SCALE_MODE: 31, B_SCALE_MODE: 32 } as const;
const LAYOUT = { BATCH_COUNT: 5, STRIDED_BATCH_OFFSET: 6 } as const;
const PREF = { MAX_WORKSPACE_BYTES: 1, MIN_ALIGN_A: 5, MIN_ALIGN_B: 6, MIN_ALIGN_C: 7, MIN_ALIGN_D: 8 } as const;
/** sizeof(cublasLtMatmulHeuristicResult_t): algo (64) + workspaceSize (8) + state, waves (8) + reserved (16). */
const HEURISTIC_RESULT_BYTES = 96;
const HEURISTIC_REQUEST = 8;
export const GEMM_WORKSPACE_BYTES = 32 << 20;

const DECLS = [
  'size_t cublasLtGetVersion()',
  'int cublasLtCreate(_Out_ void **h)',
  'int cublasLtDestroy(void *h)',
  'int cublasLtMatmulDescCreate(_Out_ void **d, int computeType, int scaleType)',
  'int cublasLtMatmulDescDestroy(void *d)',
  'int cublasLtMatmulDescSetAttribute(void *d, int attr, const void *buf, size_t n)',
  'int cublasLtMatrixLayoutCreate(_Out_ void **l, int type, uint64_t rows, uint64_t cols, int64_t ld)',
  'int cublasLtMatrixLayoutDestroy(void *l)',
  'int cublasLtMatrixLayoutSetAttribute(void *l, int attr, const void *buf, size_t n)',
  'int cublasLtMatmulPreferenceCreate(_Out_ void **p)',
  'int cublasLtMatmulPreferenceDestroy(void *p)',
  'int cublasLtMatmulPreferenceSetAttribute(void *p, int attr, const void *buf, size_t n)',
  'int cublasLtMatmulAlgoGetHeuristic(void *h, void *op, void *a, void *b, void *c, void *d, void *pref, int req, void *results, _Out_ int *count)',
  'int cublasLtMatmul(void *h, void *op, void *alpha, uint64_t A, void *Ad, uint64_t B, void *Bd, void *beta, uint64_t C, void *Cd, uint64_t D, void *Dd, void *algo, uint64_t ws, size_t wsBytes, void *stream)',
];

function i32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
}
function i64(v: bigint | number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigInt64(0, BigInt(v), true);
  return b;
}

export class CublasLt {
  private readonly f: Record<string, NativeFn> = {};
  readonly handle: Ptr;

  constructor(lib: Library) {
    for (const d of DECLS) this.f[/\s(\w+)\(/.exec(d)![1]!] = lib.func(d) as NativeFn;
    const h: unknown[] = [null];
    this.check('cublasLtCreate', this.f.cublasLtCreate!(h) as number);
    this.handle = toPtr(h[0]);
  }

  version(): number {
    return Number(this.f.cublasLtGetVersion!());
  }

  check(call: string, status: number, ctx?: InstrContext, detail?: string): void {
    if (status === 0) return;
    const name = cublasStatusName(status);
    throw new CudaError('cublasLt', call, status, name, ctx, formatCudaError(call, name, detail, ctx));
  }

  call(name: string, args: unknown[], ctx?: InstrContext, detail?: string): void {
    this.check(name, this.f[name]!(...args) as number, ctx, detail);
  }

  out(name: string, args: (o: unknown[]) => unknown[], ctx?: InstrContext, detail?: string): Ptr {
    const o: unknown[] = [null];
    this.call(name, args(o), ctx, detail);
    return toPtr(o[0]);
  }

  /** Builds descriptors and picks an algorithm with the heuristic (workspace bounded by `workspaceBytes`). */
  prepare(g: LtGemm, workspace: Ptr, workspaceBytes: number, ctx?: InstrContext): PreparedGemm {
    return new PreparedGemm(this, g, workspace, workspaceBytes, ctx);
  }
}

/** One gemm, ready to launch: descriptors, chosen algorithm, alpha/beta in native memory. */
export class PreparedGemm {
  private readonly desc: Ptr;
  private readonly layouts: Ptr[] = [];
  private readonly aDesc: Ptr;
  private readonly bDesc: Ptr;
  private readonly dDesc: Ptr;
  /** alpha (f32) at 0, beta (f32) at 4, heuristic result (algo first) at 16. */
  private readonly block: NativeBlock;
  /** Usable heuristic candidates (at least 1). */
  readonly candidates: number;
  private chosen = 0;
  readonly describe: string;

  constructor(private readonly lt: CublasLt, readonly g: LtGemm, private readonly workspace: Ptr, private readonly workspaceBytes: number, private readonly ctx?: InstrContext) {
    this.describe = `column-major D [${g.D.rows} x ${g.D.cols}] batch ${g.D.batch}, cudaDataType A/B/D ${g.A.type}/${g.B.type}/${g.D.type}, op A/B ${g.transa}/${g.transb}, epilogue ${g.epilogue}${g.scales ? `, FP8 outer-vector scales (mode ${g.scales.mode}; needs cuBLASLt 12.9+ on sm_90)` : ''}`;
    this.desc = lt.out('cublasLtMatmulDescCreate', (o) => [o, g.computeType, g.scaleType], ctx);
    const setDesc = (attr: number, v: Uint8Array) => lt.call('cublasLtMatmulDescSetAttribute', [this.desc, attr, v, v.byteLength], ctx);
    setDesc(DESC.TRANSA, i32(g.transa));
    setDesc(DESC.TRANSB, i32(g.transb));
    setDesc(DESC.EPILOGUE, i32(g.epilogue));
    if (g.bias) {
      setDesc(DESC.BIAS_POINTER, i64(g.bias.ptr));
      setDesc(DESC.BIAS_DATA_TYPE, i32(g.bias.type));
    }
    if (g.scales) {
      // FP8: per-row x per-column f32 scales applied to the fp32 accumulator before bias and D.
      setDesc(DESC.A_SCALE_MODE, i32(g.scales.mode));
      setDesc(DESC.B_SCALE_MODE, i32(g.scales.mode));
      setDesc(DESC.A_SCALE_POINTER, i64(g.scales.a));
      setDesc(DESC.B_SCALE_POINTER, i64(g.scales.b));
    }
    this.aDesc = this.layout(g.A);
    this.bDesc = this.layout(g.B);
    this.dDesc = this.layout(g.D);
    this.block = new NativeBlock(16 + HEURISTIC_RESULT_BYTES * HEURISTIC_REQUEST);
    this.block.view.setFloat32(0, g.alpha, true);
    this.block.view.setFloat32(4, 0, true);
    this.candidates = this.pickAlgorithm();
  }

  private layout(l: LtLayout): Ptr {
    const p = this.lt.out('cublasLtMatrixLayoutCreate', (o) => [o, l.type, l.rows, l.cols, l.ld], this.ctx);
    this.layouts.push(p);
    if (l.batch > 1) {
      this.lt.call('cublasLtMatrixLayoutSetAttribute', [p, LAYOUT.BATCH_COUNT, i32(l.batch), 4], this.ctx);
      this.lt.call('cublasLtMatrixLayoutSetAttribute', [p, LAYOUT.STRIDED_BATCH_OFFSET, i64(l.batchStride), 8], this.ctx);
    }
    return p;
  }

  /**
   * Asks the heuristic for up to HEURISTIC_REQUEST algorithms; keeps the usable ones packed at the
   * front of the result array (candidate 0 = the heuristic's pick; `select` may switch after
   * timing, see gemm-tune.ts). Returns how many are usable.
   */
  private pickAlgorithm(): number {
    const lt = this.lt;
    const pref = lt.out('cublasLtMatmulPreferenceCreate', (o) => [o], this.ctx);
    try {
      const setPref = (attr: number, v: Uint8Array) => lt.call('cublasLtMatmulPreferenceSetAttribute', [pref, attr, v, v.byteLength], this.ctx);
      setPref(PREF.MAX_WORKSPACE_BYTES, i64(this.workspaceBytes));
      setPref(PREF.MIN_ALIGN_A, i32(addressAlignment(this.g.A.ptr)));
      setPref(PREF.MIN_ALIGN_B, i32(addressAlignment(this.g.B.ptr)));
      setPref(PREF.MIN_ALIGN_C, i32(addressAlignment(this.g.D.ptr)));
      setPref(PREF.MIN_ALIGN_D, i32(addressAlignment(this.g.D.ptr)));
      const count = [0];
      lt.call(
        'cublasLtMatmulAlgoGetHeuristic',
        [lt.handle, this.desc, this.aDesc, this.bDesc, this.dDesc, this.dDesc, pref, HEURISTIC_REQUEST, this.block.addr + 16n, count],
        this.ctx,
        this.describe,
      );
      let usable = 0;
      for (let i = 0; i < count[0]!; i++) {
        const base = 16 + i * HEURISTIC_RESULT_BYTES;
        if (this.block.view.getInt32(base + 72, true) !== 0) continue;
        if (usable !== i) this.block.u8().copyWithin(16 + usable * HEURISTIC_RESULT_BYTES, base, base + HEURISTIC_RESULT_BYTES);
        usable++;
      }
      if (usable === 0) {
        throw new CudaError('cublasLt', 'cublasLtMatmulAlgoGetHeuristic', 15, 'CUBLAS_STATUS_NOT_SUPPORTED', this.ctx,
          formatCudaError('cublasLtMatmulAlgoGetHeuristic', 'no algorithm', `${count[0]} candidates, none usable for ${this.describe}`, this.ctx));
      }
      return usable;
    } finally {
      lt.call('cublasLtMatmulPreferenceDestroy', [pref]);
    }
  }

  /** Switches to heuristic candidate `i` (0 <= i < candidates). */
  select(i: number): void {
    if (!(i >= 0 && i < this.candidates)) throw new Error(`gemm: no algorithm candidate ${i} (have ${this.candidates})`);
    this.chosen = i;
  }

  get selected(): number {
    return this.chosen;
  }

  /** Workspace bytes the chosen algorithm needs. */
  get workspaceNeeded(): number {
    return Number(this.block.view.getBigUint64(16 + this.chosen * HEURISTIC_RESULT_BYTES + 64, true));
  }

  /** Enqueues the matmul on `stream`. */
  launch(stream: Ptr): void {
    const g = this.g;
    const a = this.block.addr;
    this.lt.call(
      'cublasLtMatmul',
      [this.lt.handle, this.desc, a, g.A.ptr, this.aDesc, g.B.ptr, this.bDesc, a + 4n, g.D.ptr, this.dDesc, g.D.ptr, this.dDesc, a + 16n + BigInt(this.chosen * HEURISTIC_RESULT_BYTES), this.workspace, this.workspaceBytes, stream],
      this.ctx,
      this.describe,
    );
  }

  destroy(): void {
    for (const l of this.layouts) this.lt.call('cublasLtMatrixLayoutDestroy', [l]);
    this.lt.call('cublasLtMatmulDescDestroy', [this.desc]);
    this.block.free();
  }
}

let ltSingleton: CublasLt | undefined;

/** Loads libcublasLt and creates one handle (needs a current CUDA context). */
export function cublasLt(): CublasLt {
  ltSingleton ??= new CublasLt(openLibrary('cuBLASLt (libcublasLt.so)', toolkitLibraryCandidates('libcublasLt', ['13', '12'])));
  return ltSingleton;
}
