import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Each file runs its own engine against the shared services; two at a time fit 2 cores.
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: ['actors/**/*.unit.test.ts', 'src/**/*.unit.test.ts'] } },
      // Only the integration tests need PostgreSQL and NATS (real or embedded).
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: ['test/faults/**', 'test/cluster/**'],
          globalSetup: ['./test/helpers/global-setup.ts'],
        },
      },
      // `npm run test:cluster`: a three-node nats-server 2.10 cluster broken on purpose (test/cluster).
      {
        extends: true,
        test: {
          name: 'cluster',
          include: ['test/cluster/**/*.test.ts'],
          globalSetup: ['./test/helpers/global-setup.ts'],
          testTimeout: 300_000,
          maxWorkers: 1,
          fileParallelism: false,
        },
      },
      // `npm run test:faults`: breaks processes on purpose; not part of `npm test`.
      {
        extends: true,
        test: {
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          globalSetup: ['./test/helpers/global-setup.ts'],
          testTimeout: 240_000,
          maxWorkers: 1,
          fileParallelism: false,
        },
      },
    ],
  },
});
