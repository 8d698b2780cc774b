// Bundles the CLI into one CommonJS file (packages/cli/dist/paradit.cjs): fast start-up, and one
// file to carry to a GPU machine. Runs on `pnpm install` (prepare) and `pnpm build`.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const alias = {
  '@paradit/ir': path.join(root, 'packages/ir/src/index.ts'),
  '@paradit/passes': path.join(root, 'packages/passes/src/index.ts'),
  '@paradit/codegen-cuda': path.join(root, 'packages/codegen-cuda/src/index.ts'),
  '@paradit/compiler': path.join(root, 'packages/compiler/src/index.ts'),
  '@paradit/runtime': path.join(root, 'packages/runtime/src/index.ts'),
};
await build({
  entryPoints: [path.join(root, 'packages/cli/src/main.ts')],
  outfile: path.join(root, 'packages/cli/dist/paradit.cjs'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'linked',
  alias,
  external: ['koffi', 'onnxruntime-node'],
  logLevel: 'warning',
});
