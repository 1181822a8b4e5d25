// ESLint (`npm run lint`): typescript-eslint's type-aware recommended rules over src, tests, scripts and bin.
// Strict where a rule catches bugs (promises nobody awaits, a promise where a callback's result is ignored,
// awaiting a non-promise); relaxed where the code is deliberate (see each rule below).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', 'reports/', '.stryker-tmp/', '.ci/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['*.js', '*.mjs', '*.cjs', 'tests/fixtures/loader/*.mjs', 'tests/model/*.mjs'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // Kept strict: each catches a lost error or a race.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // A `void` callback may be async where the caller does not wait on purpose (event handlers, timers, node-cron).
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false, attributes: false } }],
      // `_name` marks a parameter kept for its position.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Template literals print numbers and booleans on purpose; objects still must not turn into "[object Object]".
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],
      // Control characters are matched on purpose: escaping what reaches a terminal, and the tests that check it.
      'no-control-regex': 'off',
      // An async function without await is deliberate: what it throws reaches its caller as a rejection, like the rest of the API.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Tests read the CLI's JSON output and rows of any shape, then assert on them: the assertion is the type check.
    files: ['tests/**'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // The shims under bin/ are plain JavaScript without an extension, outside any tsconfig.
    files: ['bin/scorejob', 'tests/fixtures/**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, sourceType: 'module', globals: { process: 'readonly' } },
  },
);
