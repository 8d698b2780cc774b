/** @paradit/compiler: the compile driver (load, pipelines of named passes, codegen, write). */
export * from './compile';
export * from './lowering-pipeline';
