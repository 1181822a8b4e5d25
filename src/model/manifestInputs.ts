import { UsageError } from '../errors.js';

/**
 * The manifest's declarations about a run's input, before it scores: `source.ready_when` (is the
 * upstream load done?) and `checks` (is the input what the model expects?). docs/models.md "Source
 * readiness" and "Input checks".
 */
export interface ManifestInputs {
  /** `source.ready_when`: SQL returning one boolean; a run or tick starts only once it returns true. */
  readyWhen?: string | undefined;
  /** `checks`: run before the first chunk; undefined: no input checks. */
  checks?: InputChecks | undefined;
}

/** `checks` of the manifest; each check has a name `--skip-check NAME` can skip. */
export interface InputChecks {
  /** `row_count`: the source's rows against the last published full run's, as a fraction (0.2 = ±20%). */
  rowCount?: { maxChange: number } | undefined;
  /** `null_rate`: each feature's NULL share against that run's, in percentage points. */
  nullRate?: { maxChangePp: number } | undefined;
  /** `assertions`: each a query returning the keys of offending rows; any row fails it. */
  assertions: InputAssertion[];
}

export interface InputAssertion {
  name: string;
  sql: string;
}

/** `row_count` default limit: ±20% of the last published full run's rows. */
export const defaultRowCountChange = 0.2;
/** `null_rate` default limit: 5 percentage points. */
export const defaultNullRateChangePp = 5;

/** The names `--skip-check` accepts besides the assertions' own. */
export const builtInChecks = ['row_count', 'null_rate'] as const;

/** Reads `source.ready_when` and `checks` of parsed manifest JSON (`top`); messages name `file` and the field. */
export function parseManifestInputs(top: Record<string, unknown>, file: string): ManifestInputs {
  const fail = (path: string, what: string): never => {
    throw new UsageError(`${file}: ${path} ${what}`);
  };
  const out: ManifestInputs = {};
  const source = top.source as Record<string, unknown> | undefined;
  const readyWhen = source?.ready_when;
  if (readyWhen !== undefined) {
    if (typeof readyWhen !== 'string' || readyWhen.trim() === '')
      fail('source.ready_when', 'must be a SQL query returning one boolean, e.g. "SELECT max(loaded_at) >= date_trunc(\'month\', now()) FROM crm.load_log"');
    out.readyWhen = readyWhen as string;
  }
  if (top.checks !== undefined) out.checks = parseChecks(top.checks, fail);
  return out;
}

type Fail = (path: string, what: string) => never;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseChecks(value: unknown, fail: Fail): InputChecks {
  if (!isObject(value)) return fail('checks', 'must be a JSON object, e.g. {"row_count": {"max_change": 0.2}, "null_rate": {}, "assertions": []}');
  for (const key of Object.keys(value)) {
    if (!['row_count', 'null_rate', 'assertions'].includes(key)) fail(`checks.${key}`, 'is not a known field (expected row_count, null_rate, assertions)');
  }
  const checks: InputChecks = { assertions: parseAssertions(value.assertions, fail) };
  if (value.row_count !== undefined && value.row_count !== false) {
    checks.rowCount = { maxChange: limitOf(value.row_count, 'checks.row_count', 'max_change', defaultRowCountChange, fail) };
  }
  if (value.null_rate !== undefined && value.null_rate !== false) {
    checks.nullRate = { maxChangePp: limitOf(value.null_rate, 'checks.null_rate', 'max_change_pp', defaultNullRateChangePp, fail) };
  }
  return checks;
}

/** `{}` (the default limit), `{"<key>": x}`, or `false` (handled by the caller: the check is off). */
function limitOf(value: unknown, at: string, key: string, fallback: number, fail: Fail): number {
  if (!isObject(value)) return fail(at, `must be an object such as {"${key}": ${fallback}} ({} for the default), or false`);
  for (const k of Object.keys(value)) if (k !== key) fail(`${at}.${k}`, `is not a known field (expected ${key})`);
  const limit = value[key];
  if (limit === undefined) return fallback;
  if (typeof limit !== 'number' || !Number.isFinite(limit) || limit < 0) fail(`${at}.${key}`, `must be a number >= 0 (got ${JSON.stringify(limit)})`);
  return limit;
}

function parseAssertions(value: unknown, fail: Fail): InputAssertion[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) return fail('checks.assertions', 'must be an array of {"name": ..., "sql": "SELECT <key> FROM ... WHERE <offending>"}');
  const names = new Set<string>(builtInChecks);
  return value.map((item: unknown, i) => {
    const at = `checks.assertions[${i}]`;
    if (!isObject(item)) fail(at, 'must be an object with "name" and "sql"');
    const o = item;
    for (const k of Object.keys(o)) if (k !== 'name' && k !== 'sql') fail(`${at}.${k}`, 'is not a known field (expected name, sql)');
    if (typeof o.name !== 'string' || !/^[a-z][a-z0-9_]{0,62}$/.test(o.name))
      fail(`${at}.name`, 'must be a lower-case name of letters, digits and _ (what --skip-check names)');
    const name = o.name;
    if (names.has(name)) fail(`${at}.name`, `"${name}" is already used${(builtInChecks as readonly string[]).includes(name) ? ' (a built-in check)' : ''}`);
    names.add(name);
    if (typeof o.sql !== 'string' || o.sql.trim() === '') fail(`${at}.sql`, 'must be a query returning the keys of offending rows');
    return { name, sql: o.sql };
  });
}
