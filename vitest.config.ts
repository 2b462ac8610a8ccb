import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 600_000,
    // e2e suites share one runtime daemon and a 2-core machine: run files one at a time.
    fileParallelism: false,
  },
});
