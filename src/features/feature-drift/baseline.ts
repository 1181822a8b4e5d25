import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { quoteIdent, quoteQualified } from '../../db/sql.js';
import { writeFileAtomic } from '../../files.js';
import type { Feature, Manifest } from '../../model/manifest.js';
import type { CategoricalDistribution, FeatureDistribution, NumericDistribution } from '../../stats/featurePsi.js';

/** DIR/baseline.json: the training distribution of every manifest feature (docs/models.md "Feature baselines"). */
export interface FeatureBaseline {
  format: 1;
  model: { name: string; version: string };
  table: string;
  where: string | null;
  rows: number;
  computedAt: string;
  features: FeatureDistribution[];
}

export const baselineFile = 'baseline.json';

/** Quantile cut points per numeric feature: deciles (fewer where values repeat). */
const quantiles = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

const isNumeric = (f: Feature) => f.transform === 'standardize' || f.transform === 'raw';

/**
 * Computes the baseline in SQL, in one READ ONLY REPEATABLE READ transaction (every figure from the same
 * rows): one sorting pass for the numeric features' deciles, then one scan counting every feature's bins.
 */
export async function computeBaseline(
  client: pg.ClientBase,
  manifest: Manifest,
  source: { table: string; where?: string | undefined },
): Promise<FeatureBaseline> {
  const from = `${quoteQualified(source.table)}${source.where ? ` WHERE (${source.where})` : ''}`;
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const numeric = manifest.features.filter(isNumeric);
    const edges = await decileEdges(
      client,
      from,
      numeric.map((f) => f.column),
    );
    const { rows, counts } = await countBins(client, from, manifest.features, edges);
    await client.query('COMMIT');
    const features = manifest.features.map((f, i) => distribution(f, counts[i]!, rows, edges.get(f.column)));
    return {
      format: 1,
      model: { name: manifest.name, version: manifest.version },
      table: source.table,
      where: source.where ?? null,
      rows,
      computedAt: new Date().toISOString(),
      features,
    };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function decileEdges(client: pg.ClientBase, from: string, columns: readonly string[]): Promise<Map<string, number[]>> {
  if (columns.length === 0) return new Map();
  const aggs = columns.map((c) => `percentile_disc($1::float8[]) WITHIN GROUP (ORDER BY ${quoteIdent(c)}::float8)`).join(', ');
  const { rows } = await client.query<unknown[]>({ text: `SELECT ${aggs} FROM ${from}`, rowMode: 'array', values: [quantiles] });
  // Repeated values (many zeros) give repeated cut points: one bin for them, not empty ones.
  return new Map(columns.map((c, i) => [c, [...new Set(((rows[0]?.[i] as number[] | null) ?? []).map(Number))].sort((a, b) => a - b)]));
}

/** Each feature's bin counts (its bins, then NULL last), and the rows, in one scan. */
async function countBins(
  client: pg.ClientBase,
  from: string,
  features: readonly Feature[],
  edges: Map<string, number[]>,
): Promise<{ rows: number; counts: number[][] }> {
  const values: unknown[] = [];
  const param = (v: unknown) => `$${values.push(v)}`;
  const exprs = features.map((f) => {
    const col = quoteIdent(f.column);
    const bins = binPredicates(f, col, edges.get(f.column), param);
    return `ARRAY[${[...bins, `${col} IS NULL`].map((p) => `count(*) FILTER (WHERE ${p})`).join(', ')}]::int8[]`;
  });
  const { rows } = await client.query<unknown[]>({ text: `SELECT count(*), ${exprs.join(', ')} FROM ${from}`, rowMode: 'array', values });
  const row = rows[0] ?? [];
  return { rows: Number(row[0] ?? 0), counts: features.map((_, i) => (row[i + 1] as string[]).map(Number)) };
}

function binPredicates(f: Feature, col: string, edges: number[] | undefined, param: (v: unknown) => string): string[] {
  if (isNumeric(f)) {
    const e = param(edges ?? []);
    return Array.from({ length: (edges?.length ?? 0) + 1 }, (_, k) => `width_bucket(${col}::float8, ${e}::float8[]) = ${k}`);
  }
  const categories = categoriesOf(f);
  const list = param(categories);
  return [...categories.map((c) => `${col}::text = ${param(c)}`), `${col} IS NOT NULL AND NOT (${col}::text = ANY(${list}::text[]))`];
}

function categoriesOf(f: Feature): string[] {
  if (f.transform === 'boolean') return ['true', 'false'];
  return f.transform === 'one_hot' || f.transform === 'index' ? f.categories : [];
}

function distribution(f: Feature, counts: number[], rows: number, edges: number[] | undefined): FeatureDistribution {
  const share = (n: number) => (rows === 0 ? 0 : n / rows);
  const shares = counts.slice(0, -1).map(share);
  const nullShare = share(counts.at(-1) ?? 0);
  if (isNumeric(f)) return { column: f.column, kind: 'numeric', edges: edges ?? [], shares, nullShare } satisfies NumericDistribution;
  return { column: f.column, kind: 'categorical', categories: categoriesOf(f), shares, nullShare } satisfies CategoricalDistribution;
}

/** Writes DIR/baseline.json atomically; returns its path. */
export async function writeBaseline(dir: string, baseline: FeatureBaseline): Promise<string> {
  const file = join(dir, baselineFile);
  await writeFileAtomic(file, `${JSON.stringify(baseline, null, 2)}\n`, { mode: 0o644 });
  return file;
}

/** DIR/baseline.json, or undefined when the model has none. */
export async function readBaseline(dir: string): Promise<FeatureBaseline | undefined> {
  const text = await readFile(join(dir, baselineFile), 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  return text === undefined ? undefined : (JSON.parse(text) as FeatureBaseline);
}
