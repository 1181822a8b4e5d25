/**
 * Import boundaries of src/ (`npm run lint:deps`, run in CI).
 * Data flows one way: cli -> schedule -> run -> chunks -> (db reader -> model -> db writer) -> ledger -> publish;
 * features plug into the run through its extension point (src/features/feature.ts);
 * a file may import its own folder and any layer BELOW its own, never one above.
 */
const layers = [
  'cli', //       the program and its commands: the only code that exits
  'dev', //       demo, seed, embedded server: developer tools the CLI offers
  'schedule', //  cron scheduler and tick runs, which start jobs
  'run', //       start, resume, the phases of one run: calls its features' hooks
  'workers', //   shared runs: claims, leases, the coordinator's and each worker's claim loop
  'features', //  one folder per run feature (reasons, challenger, only-new): plugged into the run, never importing it
  'publish', //   publish, force, rollback, retention, retire, statistics and cut points for the gates
  'chunks', //    the chunk loop, its retry policy, outages
  'observe', //   progress, metrics, per-chunk observers
  'report', //    text and HTML reports of runs
  'ledger', //    the only code on the ledger tables and on a run's storage
  'model', //     manifest, backends, features, scorer: no database
  'db', //        pool, transactions, quoting, COPY, source reads
  'stats', //     pure statistics
  'base', //      src/*.ts: config, errors, columns, log, files, format, cronTicks
];

/** A path pattern for one layer: a folder of src/, or the files at src/'s top level. */
const pathOf = (layer) => (layer === 'base' ? '^src/[^/]+$' : `^src/${layer}/`);

const upwardRules = layers.slice(1).map((layer, i) => ({
  name: `no-upward-from-${layer}`,
  comment: `${layer}/ sits below ${layers.slice(0, i + 1).join(', ')}: it may not import them`,
  severity: 'error',
  from: { path: pathOf(layer) },
  to: { path: layers.slice(0, i + 1).map(pathOf) },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'an import cycle, type-only ones included: move the shared part into its own lower module',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...upwardRules,
    {
      name: 'model-not-db',
      comment: 'a module in model/ never imports db/: the model scores arrays, the job moves rows',
      severity: 'error',
      from: { path: '^src/model/' },
      to: { path: '^src/db/' },
    },
    {
      name: 'stats-pure',
      comment: 'stats/ is pure: it imports no other project folder, only src/errors.ts, src/columns.ts and src/format.ts',
      severity: 'error',
      from: { path: '^src/stats/' },
      to: { path: '^src/', pathNot: ['^src/stats/', '^src/(errors|columns|format)\\.ts$'] },
    },
    {
      name: 'no-tests-or-scripts',
      comment: 'the product never imports test or script code',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(tests|scripts)/' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'an import that resolves to nothing is a typo or a missing dependency',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
