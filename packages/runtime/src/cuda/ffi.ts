/**
 * FFI plumbing shared by the CUDA bindings: koffi is required lazily (importing the runtime never
 * loads it), shared libraries are found from a list of candidate paths, and native scratch memory
 * (stable addresses for kernel parameters and graph-node structs) is allocated through koffi.
 * Pointers are BigInt (koffi 3); `null`/0 is the null pointer.
 */
import type * as KoffiModule from 'koffi';

export type Koffi = typeof KoffiModule;
export type Library = ReturnType<Koffi['load']>;
export type NativeFn = (...args: unknown[]) => unknown;
/** A host or device address. */
export type Ptr = bigint;

let koffiModule: Koffi | undefined;

/** The koffi module, loaded on first use. Throws a readable error when it is not installed. */
export function koffi(): Koffi {
  if (!koffiModule) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      koffiModule = require('koffi') as Koffi;
    } catch (e) {
      throw new Error(`CUDA runtime: cannot load koffi (${(e as Error).message}); install it or set NODE_PATH to a folder holding it.`);
    }
  }
  return koffiModule;
}

/** Normalizes what koffi returns for a pointer or 64-bit integer (number | bigint | null). */
export function toPtr(v: unknown): Ptr {
  if (v === null || v === undefined) return 0n;
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(v);
  throw new Error(`expected a pointer, got ${typeof v}`);
}

/** Opens the first library of `candidates` that loads; the error lists every path tried. */
export function openLibrary(what: string, candidates: readonly string[]): Library {
  const k = koffi();
  const failures: string[] = [];
  for (const c of candidates) {
    try {
      return k.load(c);
    } catch (e) {
      failures.push(`${c}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`CUDA runtime: cannot load ${what}; tried:\n  ${failures.join('\n  ')}`);
}

/** Candidate paths of a CUDA toolkit library (`CUDA_HOME`/lib64 first, then the usual places). */
export function toolkitLibraryCandidates(base: string, versions: readonly string[]): string[] {
  const dirs = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda']
    .filter((d): d is string => !!d)
    .map((d) => `${d}/lib64`);
  const names = [...versions.map((v) => `${base}.so.${v}`), `${base}.so`];
  const out: string[] = [];
  for (const d of dirs) for (const n of names) out.push(`${d}/${n}`);
  out.push(...names); // the dynamic loader's own search (LD_LIBRARY_PATH, ldconfig)
  return out;
}

/** Binds `decl` (a C prototype) from `lib`, or returns undefined when the symbol is missing. */
export function optionalFunc(lib: Library, decl: string): NativeFn | undefined {
  try {
    return lib.func(decl) as NativeFn;
  } catch {
    return undefined;
  }
}

/**
 * Native memory with a stable address (freed by `free`). `view` is a DataView over it for
 * little-endian writes; `addr` is what native calls receive.
 */
export class NativeBlock {
  readonly addr: Ptr;
  readonly view: DataView;
  readonly bytes: number;
  private freed = false;

  constructor(bytes: number) {
    const k = koffi();
    this.bytes = Math.max(8, bytes);
    this.addr = toPtr(k.alloc('uint8_t', this.bytes));
    this.view = new DataView(k.view(this.addr, this.bytes));
    new Uint8Array(this.view.buffer, this.view.byteOffset, this.bytes).fill(0);
  }

  u8(): Uint8Array {
    return new Uint8Array(this.view.buffer, this.view.byteOffset, this.bytes);
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    koffi().free(this.addr);
  }
}

let libcEnv: { set: NativeFn; unset: NativeFn } | undefined | null;

/**
 * Sets (or, with `undefined`, removes) an environment variable in the C environment too. Node's
 * process.env setter already calls setenv, but a sandboxed process.env (jest replaces it with a
 * plain object) does not, and NCCL reads the C environment (getenv): going through libc as well
 * makes what NCCL sees certain.
 */
export function setNativeEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  if (libcEnv === undefined) {
    try {
      const libc = koffi().load('libc.so.6');
      libcEnv = {
        set: libc.func('int setenv(const char *name, const char *value, int overwrite)') as NativeFn,
        unset: libc.func('int unsetenv(const char *name)') as NativeFn,
      };
    } catch {
      libcEnv = null;
    }
  }
  if (value === undefined) libcEnv?.unset(name);
  else libcEnv?.set(name, value, 1);
}
