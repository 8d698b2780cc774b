// ESLint (typescript-eslint): no `any`, and the package boundaries of the README's layout, so a
// wrong import fails `pnpm test` instead of review. Boundaries (what each package's src may import):
//   ir            nothing of ParaDiT
//   passes        ir
//   runtime       ir (a plan is executed, never re-derived: no passes, no codegen)
//   codegen-cuda  ir, passes, runtime (the CUDA target's lowering passes and renderer)
//   compiler      ir, passes, runtime, codegen-cuda (the compile driver)
//   cli           anything (and nothing imports cli)
// Relative imports that climb into another package's folder are refused the same way.
import tseslint from 'typescript-eslint';

const PKGS = ['ir', 'passes', 'runtime', 'codegen-cuda', 'compiler', 'cli'];

/** no-restricted-imports for a package that may import only `allowed` (plus itself). */
function boundary(pkg, allowed) {
  const banned = PKGS.filter((p) => p !== pkg && !allowed.includes(p));
  return {
    files: [`packages/${pkg}/src/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: banned.flatMap((p) => [
            { group: [`@paradit/${p}`, `@paradit/${p}/*`], message: `packages/${pkg} may not import @paradit/${p} (see eslint.config.mjs: ${pkg} imports ${allowed.join(', ') || 'nothing of ParaDiT'}).` },
            { group: [`**/${p}/src`, `**/${p}/src/*`, `**/packages/${p}/**`], message: `packages/${pkg} may not reach into packages/${p} by a relative path.` },
          ]),
        },
      ],
    },
  };
}

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '.gpu/**', '.gpu-work/**', 'bench/**/*.py', '**/*.cjs'] },
  // Disable directives for rules this config does not turn on (no-console, ...) are left alone.
  { linterOptions: { reportUnusedDisableDirectives: 'off' } },
  {
    files: ['packages/**/*.ts', 'tests/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts', 'examples/**/*.ts'],
    languageOptions: { parser: tseslint.parser, ecmaVersion: 2022, sourceType: 'module' },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  boundary('ir', []),
  boundary('passes', ['ir']),
  boundary('runtime', ['ir']),
  boundary('codegen-cuda', ['ir', 'passes', 'runtime']),
  boundary('compiler', ['ir', 'passes', 'runtime', 'codegen-cuda']),
  boundary('cli', ['ir', 'passes', 'runtime', 'codegen-cuda', 'compiler']),
);
