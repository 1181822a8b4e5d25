import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // tests/fixtures holds suites that tests run in a child vitest (some fail on purpose).
    exclude: [...configDefaults.exclude, 'tests/fixtures/**'],
    globalSetup: ['tests/helpers/globalSetup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: two test files at a time; each has its own database.
    maxWorkers: 2,
  },
});
