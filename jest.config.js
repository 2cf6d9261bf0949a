/**
 * Native ESM jest (several dependencies ship only as ES modules); @swc/jest strips types without
 * type-checking — `npm run typecheck` does that for src and tests alike.
 * @type {import('jest').Config}
 */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'typescript' }, target: 'es2023' }, module: { type: 'es6' } },
    ],
  },
  // Only our own folders: `.local/` holds etcd's data, whose `.snap` files jest would take for snapshots.
  roots: ['<rootDir>/test', '<rootDir>/src', '<rootDir>/workers', '<rootDir>/dev'],
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
  // Tests share one apiserver and one Redis on a 2-core machine: two workers keep them busy without timeouts.
  maxWorkers: 2,
  testTimeout: 60_000,
};
