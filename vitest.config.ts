import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Two projects over one set of options. `main` (`npm test`) is everything in tests/ but tests/system/;
 * `system` (`npm run test:system`) holds the tests that need more than a database: a server of their own
 * stopped and restarted, the real cron daemon, headless Chromium, a Pushgateway, the benchmark, the harness
 * starting embedded PostgreSQL in a child vitest. Plain `vitest run FILE` finds a file in either.
 */
export default defineConfig({
  test: {
    // tests/fixtures holds suites that tests run in a child vitest (some fail on purpose).
    exclude: [...configDefaults.exclude, 'tests/fixtures/**'],
    globalSetup: ['tests/helpers/globalSetup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: two test files at a time; each has its own database.
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'main', include: ['tests/**/*.test.ts'], exclude: [...configDefaults.exclude, 'tests/fixtures/**', 'tests/system/**'] } },
      { extends: true, test: { name: 'system', include: ['tests/system/**/*.test.ts'] } },
    ],
  },
});
