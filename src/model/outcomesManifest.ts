import { UsageError } from '../errors.js';

/**
 * `outcomes` in manifest.json: where the truth about customers lands after they were scored, and how long a
 * run waits for it (docs/outcomes.md). `scorejob outcomes sync` joins each kept run's scores to it.
 */
export interface ManifestOutcomes {
  /** A table or view (`table` or `schema.table`) holding one row per observed outcome. Exactly one of table and query. */
  table?: string | undefined;
  /** A SELECT giving the same columns as `table` would (named by key, event_time, label). */
  query?: string | undefined;
  /** The customer key column (the source's key values). Default `customer_id`. */
  key: string;
  /** When the outcome happened (timestamptz or date). Default `event_time`. */
  eventTime: string;
  /** The binary label (boolean, or 0/1): true = the event the score predicts happened. Default `label`. */
  label: string;
  /** How long after a run's publication an outcome counts for it, as a PostgreSQL interval, e.g. `90 days`. */
  horizon: string;
  /**
   * A scored customer with no outcome row once the run is mature: `negative` (the event did not happen, e.g.
   * a churn table that lists churners only) or `unknown` (left out of the figures; coverage shows it). Default `unknown`.
   */
  absent: 'negative' | 'unknown';
}

const horizonPattern = /^([1-9][0-9]{0,4}) (day|days|week|weeks|month|months|year|years)$/;

/** A horizon as the manifest and `seed --horizon` spell it: a whole number and a unit, e.g. `90 days`. */
export function isHorizon(value: string): boolean {
  return horizonPattern.test(value.trim());
}
const fields = ['table', 'query', 'key', 'event_time', 'label', 'horizon', 'absent'];

/** Validates `outcomes`; every message is one line naming `file` and the field. */
export function parseOutcomes(value: unknown, file: string): ManifestOutcomes {
  const fail = (path: string, what: string): never => {
    throw new UsageError(`${file}: outcomes${path === '' ? '' : `.${path}`} ${what}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    fail('', 'must be a JSON object, e.g. {"table": "customer_outcomes", "horizon": "90 days"}');
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!fields.includes(k)) fail(k, `is not a known field (expected ${fields.join(', ')})`);
  const text = (k: string, fallback?: string): string | undefined => {
    const v = o[k];
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || v.trim() === '') fail(k, `must be a non-empty string (got ${JSON.stringify(v) ?? 'nothing'})`);
    if ((v as string).includes('\0')) fail(k, 'must not contain a NUL character');
    return v as string;
  };
  const table = text('table');
  const query = text('query');
  if ((table === undefined) === (query === undefined))
    fail(table === undefined ? 'table' : 'query', 'and query: give exactly one (a table or view name, or a SELECT)');
  if (table !== undefined && (table.split('.').length > 2 || table.split('.').some((p) => p === '')))
    fail('table', `must be "table" or "schema.table" (got "${table}")`);
  if (query !== undefined && !/^\s*(select|with)\b/i.test(query)) fail('query', 'must be a SELECT (or WITH … SELECT) statement');
  const horizon = text('horizon');
  if (horizon === undefined) return fail('horizon', 'is required: how long after a run is published its outcomes count, e.g. "90 days"');
  if (!horizonPattern.test(horizon.trim()))
    fail('horizon', `must be a whole number and a unit (days, weeks, months, years), e.g. "90 days" (got "${horizon}")`);
  const absent = text('absent', 'unknown');
  if (absent !== 'negative' && absent !== 'unknown') fail('absent', `must be "negative" or "unknown" (got "${absent}")`);
  const ident = (k: string, fallback: string): string => {
    const v = text(k, fallback) as string;
    if (Buffer.byteLength(v) > 63) fail(k, `"${v}" is longer than PostgreSQL's 63-byte names`);
    return v;
  };
  return {
    ...(table !== undefined ? { table } : { query }),
    key: ident('key', 'customer_id'),
    eventTime: ident('event_time', 'event_time'),
    label: ident('label', 'label'),
    horizon: horizon.trim(),
    absent: absent as ManifestOutcomes['absent'],
  };
}
