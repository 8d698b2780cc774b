/**
 * CUDA driver API bindings (libcuda.so.1) through koffi. Each wrapper checks the returned CUresult
 * and throws a CudaError naming the call, the status (cuGetErrorName/String) and, when given, the
 * plan instruction. Symbols are the exact versioned names CUDA 13's cuda.h maps to (cuMemAlloc_v2,
 * cuGraphAddNode_v2, cuStreamGetCaptureInfo_v3, ...), so the prototypes below match the driver ABI.
 * Handles and device pointers are BigInt.
 */
import { CudaError, InstrContext, driverHint, formatCudaError } from './errors';
import { Library, NativeFn, Ptr, openLibrary, optionalFunc, toPtr } from './ffi';

/** CUdevice_attribute values used here. */
const CU_DEVICE_ATTRIBUTE = {
  MULTIPROCESSOR_COUNT: 16,
  COMPUTE_CAPABILITY_MAJOR: 75,
  COMPUTE_CAPABILITY_MINOR: 76,
  MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: 97,
} as const;
export const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
export const CU_STREAM_SET_CAPTURE_DEPENDENCIES = 1;
export const CU_GRAPH_NODE_TYPE_CONDITIONAL = 13;
export const CU_GRAPH_COND_TYPE_IF = 0;
const CU_EVENT_DISABLE_TIMING = 2;
const CUDA_ERROR_NOT_READY = 600;

const REQUIRED = [
  'int cuInit(uint flags)',
  'int cuDriverGetVersion(_Out_ int *v)',
  'int cuGetErrorName(int status, _Out_ const char **s)',
  'int cuGetErrorString(int status, _Out_ const char **s)',
  'int cuDeviceGetCount(_Out_ int *n)',
  'int cuDeviceGet(_Out_ int *dev, int ordinal)',
  'int cuDeviceGetName(_Out_ uint8_t *name, int len, int dev)',
  'int cuDeviceGetAttribute(_Out_ int *v, int attr, int dev)',
  'int cuDevicePrimaryCtxRetain(_Out_ void **ctx, int dev)',
  'int cuDevicePrimaryCtxRelease_v2(int dev)',
  'int cuCtxSetCurrent(void *ctx)',
  'int cuCtxSynchronize()',
  'int cuMemGetInfo_v2(_Out_ size_t *free, _Out_ size_t *total)',
  'int cuMemAlloc_v2(_Out_ uint64_t *dptr, size_t bytes)',
  'int cuMemFree_v2(uint64_t dptr)',
  'int cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t bytes)',
  'int cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t bytes)',
  'int cuMemcpyHtoDAsync_v2(uint64_t dst, const void *src, size_t bytes, void *stream)',
  'int cuMemcpyDtoHAsync_v2(void *dst, uint64_t src, size_t bytes, void *stream)',
  'int cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t bytes, void *stream)',
  'int cuMemsetD8_v2(uint64_t dst, uint8_t value, size_t n)',
  'int cuMemsetD8Async(uint64_t dst, uint8_t value, size_t n, void *stream)',
  'int cuStreamCreate(_Out_ void **stream, uint flags)',
  'int cuStreamDestroy_v2(void *stream)',
  'int cuStreamSynchronize(void *stream)',
  'int cuEventCreate(_Out_ void **ev, uint flags)',
  'int cuEventRecord(void *ev, void *stream)',
  'int cuEventSynchronize(void *ev)',
  'int cuEventDestroy_v2(void *ev)',
  'int cuEventQuery(void *ev)',
  'int cuStreamWaitEvent(void *stream, void *ev, uint flags)',
  'int cuMemcpy2DAsync_v2(const void *copy, void *stream)',
  'int cuModuleLoadData(_Out_ void **mod, const void *image)',
  'int cuModuleUnload(void *mod)',
  'int cuModuleGetFunction(_Out_ void **fn, void *mod, const char *name)',
  'int cuFuncSetAttribute(void *fn, int attr, int value)',
  'int cuLaunchKernel(void *fn, uint gx, uint gy, uint gz, uint bx, uint by, uint bz, uint smem, void *stream, void *params, void *extra)',
  'int cuStreamBeginCapture_v2(void *stream, int mode)',
  'int cuStreamEndCapture(void *stream, _Out_ void **graph)',
  'int cuGraphInstantiateWithFlags(_Out_ void **exec, void *graph, uint64_t flags)',
  'int cuGraphLaunch(void *exec, void *stream)',
  'int cuGraphExecDestroy(void *exec)',
  'int cuGraphDestroy(void *graph)',
  'int cuGraphGetNodes(void *graph, void *nodes, _Inout_ size_t *n)',
] as const;

/** Present only on newer drivers (conditional nodes need CUDA 12.4+, if/else bodies 12.8+). */
const OPTIONAL = [
  'int cuEventElapsedTime_v2(_Out_ float *ms, void *start, void *end)',
  'int cuEventElapsedTime(_Out_ float *ms, void *start, void *end)',
  'int cuStreamBeginCaptureToGraph(void *stream, void *graph, void *deps, void *edgeData, size_t n, int mode)',
  'int cuStreamGetCaptureInfo_v3(void *stream, _Out_ int *status, _Out_ uint64_t *id, _Out_ void **graph, _Out_ void **deps, _Out_ void **edgeData, _Out_ size_t *n)',
  'int cuStreamUpdateCaptureDependencies_v2(void *stream, void *deps, void *edgeData, size_t n, uint flags)',
  'int cuGraphAddNode_v2(_Out_ void **node, void *graph, void *deps, void *edgeData, size_t n, void *params)',
  'int cuGraphConditionalHandleCreate(_Out_ uint64_t *handle, void *graph, void *ctx, uint defaultValue, uint flags)',
] as const;

function nameOf(decl: string): string {
  const m = /\s(\w+)\(/.exec(decl);
  if (!m) throw new Error(`bad prototype ${decl}`);
  return m[1]!;
}

export interface DeviceInfo {
  readonly ordinal: number;
  readonly name: string;
  readonly major: number;
  readonly minor: number;
  readonly sms: number;
  readonly maxSmemOptin: number;
  readonly driverVersion: number;
}

/** The driver library with checked wrappers. One per process (see `cudaDriver()`). */
export class Driver {
  private readonly fns = new Map<string, NativeFn>();

  constructor(readonly lib: Library) {
    for (const d of REQUIRED) this.fns.set(nameOf(d), lib.func(d) as NativeFn);
    for (const d of OPTIONAL) {
      const f = optionalFunc(lib, d);
      if (f) this.fns.set(nameOf(d), f);
    }
  }

  has(name: string): boolean {
    return this.fns.has(name);
  }

  /** Calls `name` and returns its CUresult unchecked (cuEventQuery's CUDA_ERROR_NOT_READY is no error). */
  status(name: string, args: unknown[]): number {
    const f = this.fns.get(name);
    if (!f) throw new Error(`${name}: this CUDA driver does not export it (driver too old?)`);
    return f(...args) as number;
  }

  /** Calls `name` and throws on a non-zero CUresult. */
  call(name: string, args: unknown[], ctx?: InstrContext): void {
    const f = this.fns.get(name);
    if (!f) throw new Error(`${name}: this CUDA driver does not export it (driver too old?)`);
    const status = f(...args) as number;
    if (status !== 0) throw this.error(name, status, ctx);
  }

  error(call: string, status: number, ctx?: InstrContext): CudaError {
    const n: (string | null)[] = [null];
    const s: (string | null)[] = [null];
    const nameFn = this.fns.get('cuGetErrorName')!;
    const strFn = this.fns.get('cuGetErrorString')!;
    const statusName = nameFn(status, n) === 0 && n[0] ? n[0] : `CUresult ${status}`;
    const text = strFn(status, s) === 0 && s[0] ? s[0] : undefined;
    return new CudaError('driver', call, status, statusName, ctx, formatCudaError(call, statusName, text, ctx, driverHint(statusName)));
  }

  // --- one-value helpers -------------------------------------------------------------------
  outPtr(name: string, args: (a: unknown[]) => unknown[], ctx?: InstrContext): Ptr {
    const o: unknown[] = [null];
    this.call(name, args(o), ctx);
    return toPtr(o[0]);
  }

  outInt(name: string, args: (a: unknown[]) => unknown[]): number {
    const o: unknown[] = [0];
    this.call(name, args(o));
    return Number(o[0]);
  }

  deviceInfo(ordinal: number): DeviceInfo {
    const dev = this.outInt('cuDeviceGet', (o) => [o, ordinal]);
    const attr = (a: number) => this.outInt('cuDeviceGetAttribute', (o) => [o, a, dev]);
    const nameBuf = new Uint8Array(256);
    this.call('cuDeviceGetName', [nameBuf, 256, dev]);
    const end = nameBuf.indexOf(0);
    return {
      ordinal: dev,
      name: Buffer.from(nameBuf.subarray(0, end < 0 ? 256 : end)).toString('utf8'),
      major: attr(CU_DEVICE_ATTRIBUTE.COMPUTE_CAPABILITY_MAJOR),
      minor: attr(CU_DEVICE_ATTRIBUTE.COMPUTE_CAPABILITY_MINOR),
      sms: attr(CU_DEVICE_ATTRIBUTE.MULTIPROCESSOR_COUNT),
      maxSmemOptin: attr(CU_DEVICE_ATTRIBUTE.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
      driverVersion: this.outInt('cuDriverGetVersion', (o) => [o]),
    };
  }

  memAlloc(bytes: number, what: string): Ptr {
    try {
      return this.outPtr('cuMemAlloc_v2', (o) => [o, Math.max(bytes, 256)]);
    } catch (e) {
      if (e instanceof CudaError) e.message += ` (allocating ${what}: ${bytes} bytes)`;
      throw e;
    }
  }

  memFree(p: Ptr): void {
    if (p !== 0n) this.call('cuMemFree_v2', [p]);
  }

  htod(dst: Ptr, src: Uint8Array, ctx?: InstrContext): void {
    if (src.byteLength) this.call('cuMemcpyHtoD_v2', [dst, src, src.byteLength], ctx);
  }

  dtoh(dst: Uint8Array, src: Ptr, ctx?: InstrContext): void {
    if (dst.byteLength) this.call('cuMemcpyDtoH_v2', [dst, src, dst.byteLength], ctx);
  }

  memsetD8(dst: Ptr, value: number, bytes: number): void {
    if (bytes) this.call('cuMemsetD8_v2', [dst, value, bytes]);
  }

  streamCreate(): Ptr {
    return this.outPtr('cuStreamCreate', (o) => [o, 0]);
  }

  sync(stream: Ptr): void {
    this.call('cuStreamSynchronize', [stream]);
  }

  /** An event; `timing: false` makes CU_EVENT_DISABLE_TIMING ones (cheaper: only for ordering and polling). */
  eventCreate(timing = true): Ptr {
    return this.outPtr('cuEventCreate', (o) => [o, timing ? 0 : CU_EVENT_DISABLE_TIMING]);
  }

  /** True when every work the event captured has finished; throws on a sticky device error. */
  eventDone(ev: Ptr, ctx?: InstrContext): boolean {
    const s = this.status('cuEventQuery', [ev]);
    if (s === 0) return true;
    if (s === CUDA_ERROR_NOT_READY) return false;
    throw this.error('cuEventQuery', s, ctx);
  }

  /** Milliseconds between two recorded, completed events. */
  elapsedMs(start: Ptr, end: Ptr): number {
    const o: number[] = [0];
    this.call(this.has('cuEventElapsedTime_v2') ? 'cuEventElapsedTime_v2' : 'cuEventElapsedTime', [o, start, end]);
    return o[0]!;
  }

  moduleLoad(image: Uint8Array, what: string): Ptr {
    try {
      return this.outPtr('cuModuleLoadData', (o) => [o, image]);
    } catch (e) {
      if (e instanceof CudaError) e.message += ` (loading ${what})`;
      throw e;
    }
  }

  getFunction(mod: Ptr, name: string, ctx?: InstrContext): Ptr {
    return this.outPtr('cuModuleGetFunction', (o) => [o, mod, name], ctx);
  }

  graphNodeCount(graph: Ptr): number {
    const n: number[] = [0];
    this.call('cuGraphGetNodes', [graph, null, n]);
    return Number(n[0]);
  }
}

let driverSingleton: Driver | undefined;

/** Loads libcuda.so.1 and calls cuInit(0) once. Throws a readable error when there is no driver. */
export function cudaDriver(): Driver {
  if (!driverSingleton) {
    // PARADIT_LIBCUDA: a driver library outside the loader's path (the host tests' stand-in).
    const lib = openLibrary('the CUDA driver (libcuda.so.1)', [
      ...(process.env['PARADIT_LIBCUDA'] ? [process.env['PARADIT_LIBCUDA']] : []),
      'libcuda.so.1',
      '/usr/lib/x86_64-linux-gnu/libcuda.so.1',
      '/usr/local/nvidia/lib64/libcuda.so.1',
      '/usr/lib64/libcuda.so.1',
    ]);
    const d = new Driver(lib);
    d.call('cuInit', [0]);
    driverSingleton = d;
  }
  return driverSingleton;
}

/** A retained primary context on one device, made current on this thread. */
export class DeviceContext {
  readonly ctx: Ptr;
  readonly info: DeviceInfo;

  constructor(readonly driver: Driver, ordinal = 0) {
    const count = driver.outInt('cuDeviceGetCount', (o) => [o]);
    if (ordinal >= count) throw new Error(`CUDA runtime: device ${ordinal} asked for, but the driver sees ${count} device(s)`);
    this.info = driver.deviceInfo(ordinal);
    this.ctx = driver.outPtr('cuDevicePrimaryCtxRetain', (o) => [o, this.info.ordinal]);
    driver.call('cuCtxSetCurrent', [this.ctx]);
  }

  release(): void {
    this.driver.call('cuDevicePrimaryCtxRelease_v2', [this.info.ordinal]);
  }
}
