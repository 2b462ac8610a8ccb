import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 600_000,
    // e2e suites share one runtime daemon and a 2-core machine: run files one at a time.
    fileParallelism: false,
    // CI runs the end-to-end suites on a loaded 2-core machine: a test gets one more try there.
    // Locally a failure shows at once.
    retry: process.env.CI ? 1 : 0,
  },
});
