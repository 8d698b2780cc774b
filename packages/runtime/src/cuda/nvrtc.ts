/**
 * NVRTC bindings: compiles a plan's kernels/module.cu to a cubin for the device's architecture
 * when the plan carries no cubin or one for another architecture. The compile log is kept in the
 * error, since it is what tells the user which kernel and line failed.
 */
import { CudaError, formatCudaError } from './errors';
import { Library, NativeFn, Ptr, openLibrary, toPtr, toolkitLibraryCandidates } from './ffi';

interface NvrtcResult {
  readonly cubin: Uint8Array;
  readonly log: string;
  readonly options: readonly string[];
  readonly ms: number;
}

/** Options for a device of compute capability major.minor ("sm_90a" on Hopper: wgmma, setmaxnreg). */
export function nvrtcOptions(arch: string, extra: readonly string[], includeDir = defaultIncludeDir()): string[] {
  const opts = [`--gpu-architecture=${arch}`, '-std=c++17', `-I${includeDir}`];
  for (const o of extra) {
    // nvcc-only spellings the plan may carry; NVRTC takes the long forms or none.
    if (o.startsWith('-gencode') || o.startsWith('-arch') || o.startsWith('--gpu-architecture') || o === '-cubin') continue;
    if (o === '-std=c++17') continue;
    opts.push(o);
  }
  return opts;
}

function defaultIncludeDir(): string {
  return `${process.env.CUDA_HOME ?? process.env.CUDA_PATH ?? '/usr/local/cuda'}/include`;
}

/** The arch NVRTC should target for a device: sm_90a on compute capability 9.0, else sm_XY. */
export function archForDevice(major: number, minor: number): string {
  const base = `sm_${major}${minor}`;
  return major === 9 && minor === 0 ? `${base}a` : base;
}

export class Nvrtc {
  private readonly f: Record<string, NativeFn>;

  constructor(lib: Library) {
    const decls = [
      'int nvrtcVersion(_Out_ int *major, _Out_ int *minor)',
      'const char *nvrtcGetErrorString(int status)',
      'int nvrtcCreateProgram(_Out_ void **prog, const char *src, const char *name, int numHeaders, void *headers, void *includeNames)',
      'int nvrtcCompileProgram(void *prog, int numOptions, const char **options)',
      'int nvrtcGetProgramLogSize(void *prog, _Out_ size_t *n)',
      'int nvrtcGetProgramLog(void *prog, _Out_ uint8_t *log)',
      'int nvrtcGetCUBINSize(void *prog, _Out_ size_t *n)',
      'int nvrtcGetCUBIN(void *prog, _Out_ uint8_t *cubin)',
      'int nvrtcDestroyProgram(_Inout_ void **prog)',
    ];
    this.f = {};
    for (const d of decls) this.f[/\s\*?(\w+)\(/.exec(d)![1]!] = lib.func(d) as NativeFn;
  }

  private check(call: string, status: number, log?: string): void {
    if (status === 0) return;
    const name = (this.f.nvrtcGetErrorString!(status) as string | null) ?? `nvrtcResult ${status}`;
    const msg = formatCudaError(call, name, undefined) + (log ? `\n--- NVRTC log ---\n${log.trim()}` : '');
    throw new CudaError('nvrtc', call, status, name, undefined, msg);
  }

  version(): string {
    const a = [0];
    const b = [0];
    this.check('nvrtcVersion', this.f.nvrtcVersion!(a, b) as number);
    return `${a[0]}.${b[0]}`;
  }

  /** Compiles `source` to a cubin; throws with the compile log on failure. */
  compile(source: string, name: string, options: readonly string[]): NvrtcResult {
    const t0 = performance.now();
    const progOut: unknown[] = [null];
    this.check('nvrtcCreateProgram', this.f.nvrtcCreateProgram!(progOut, source, name, 0, null, null) as number);
    const prog: Ptr = toPtr(progOut[0]);
    try {
      const status = this.f.nvrtcCompileProgram!(prog, options.length, [...options]) as number;
      const log = this.log(prog);
      if (status !== 0) this.check(`nvrtcCompileProgram(${name}, ${options.join(' ')})`, status, log);
      const n = [0];
      this.check('nvrtcGetCUBINSize', this.f.nvrtcGetCUBINSize!(prog, n) as number);
      const cubin = new Uint8Array(Number(n[0]));
      this.check('nvrtcGetCUBIN', this.f.nvrtcGetCUBIN!(prog, cubin) as number);
      return { cubin, log, options, ms: performance.now() - t0 };
    } finally {
      this.f.nvrtcDestroyProgram!([prog]);
    }
  }

  private log(prog: Ptr): string {
    const n = [0];
    if ((this.f.nvrtcGetProgramLogSize!(prog, n) as number) !== 0 || Number(n[0]) <= 1) return '';
    const buf = new Uint8Array(Number(n[0]));
    this.f.nvrtcGetProgramLog!(prog, buf);
    return Buffer.from(buf.subarray(0, buf.length - 1)).toString('utf8');
  }
}

let nvrtcSingleton: Nvrtc | undefined;

export function nvrtc(): Nvrtc {
  nvrtcSingleton ??= new Nvrtc(openLibrary('NVRTC (libnvrtc.so)', toolkitLibraryCandidates('libnvrtc', ['13', '12'])));
  return nvrtcSingleton;
}
