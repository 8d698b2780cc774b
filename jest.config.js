/** Jest runs TypeScript through swc (no type check here: `pnpm test` runs tsc first). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/packages', '<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  moduleNameMapper: {
    '^@paradit/ir$': '<rootDir>/packages/ir/src/index.ts',
    '^@paradit/passes$': '<rootDir>/packages/passes/src/index.ts',
    '^@paradit/codegen-cuda$': '<rootDir>/packages/codegen-cuda/src/index.ts',
    '^@paradit/compiler$': '<rootDir>/packages/compiler/src/index.ts',
    '^@paradit/runtime$': '<rootDir>/packages/runtime/src/index.ts',
    '^@paradit/cli$': '<rootDir>/packages/cli/src/main.ts',
  },
  testTimeout: 120000,
};
