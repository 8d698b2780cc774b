/** @paradit/runtime: runs plans (CPU now; CUDA later) and compares outputs. No compiler code here. */
export * from './compare';
export * from './test-data';
