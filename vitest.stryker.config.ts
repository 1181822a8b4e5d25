import { configDefaults, defineConfig } from 'vitest/config';

/**
 * The tests Stryker runs against each mutant (`npm run mutate`, stryker.config.mjs): those that call the
 * library in-process. CLI tests run the built dist/ in a child process, which never holds a mutant, so
 * they are left out. Every mutant's tests run against the server of TEST_DATABASE_URL (no embedded server).
 */
if (!process.env.TEST_DATABASE_URL) {
  throw new Error('npm run mutate: set TEST_DATABASE_URL (e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run mutate)');
}

export default defineConfig({
  test: {
    include: ['tests/unit/**/*.test.ts', 'tests/db/**/*.test.ts'],
    exclude: [...configDefaults.exclude, 'tests/fixtures/**'],
    globalSetup: ['tests/helpers/globalSetup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
