// Mutation testing of the modules that carry the guarantees (DESIGN.md §2): `npm run mutate`.
// Not part of `npm test` or CI: a full run takes tens of minutes. Scope it with --mutate (results and the
// commands per module: docs/mutation.md), e.g.
//   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run mutate -- --mutate src/publish/publish.ts
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.stryker.config.ts' },
  mutate: [
    'src/ledger/ledger.ts',
    'src/ledger/history.ts',
    'src/publish/publish.ts',
    'src/chunks/chunkLoop.ts',
    'src/model/features.ts',
    'src/ledger/runLock.ts',
    'src/ledger/chunkClaims.ts',
    'src/chunks/retryPolicy.ts',
    'src/stats/scoreCuts.ts',
    'src/stats/runStats.ts',
  ],
  coverageAnalysis: 'perTest',
  // Module-level code runs once per test process: mutating it would rerun every test for each mutant.
  ignoreStatic: true,
  concurrency: 2,
  // Added to 1.5 × a test run's time: a mutant that makes the job wait forever (a lost COMMIT, a loop) costs this much.
  timeoutMS: 15_000,
  reporters: ['clear-text', 'progress-append-only', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  // `npm run mutate:changed`: reruns only the mutants whose code or covering tests changed since the last
  // incremental run (one file per scope: pass --incrementalFile reports/mutation/<module>.incremental.json).
  incrementalFile: 'reports/mutation/stryker-incremental.json',
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
