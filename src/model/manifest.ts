import { ManifestReader as Reader, describe, maxIndexId } from './manifestReader.js';
import { parseManifestInputs, type ManifestInputs } from './manifestInputs.js';
import { parseOutcomes, type ManifestOutcomes } from './outcomesManifest.js';

/**
 * `manifest.json`: what a model directory's TF.js model means (docs/models.md). Written by
 * `scripts/train.ts`, read once at start-up; every problem is a one-line {@link UsageError} that names
 * the file and the field path, so a person can fix the file without reading this code.
 */
export interface Manifest extends ManifestInputs {
  name: string;
  version: string;
  description: string;
  /** The table or view to read; `table` may be `schema.table`, else the search_path resolves it. */
  source: ManifestSource;
  /**
   * In model input order: feature i's inputs come right after feature i-1's (within its model input, when
   * features name several `input`s).
   */
  features: Feature[];
  output: ManifestOutput;
  /** Free-form notes of the training script (data, metrics); never interpreted. */
  training?: Record<string, unknown> | undefined;
  /**
   * `"draft": true`, written by `scorejob model init`: nobody has reviewed the manifest yet. A run refuses
   * it except with `--dry-run` (src/model/load.ts); a person deletes the key once reviewed.
   */
  draft?: true | undefined;
  /** Where outcomes land and how long a run waits for them (`scorejob outcomes sync`, docs/outcomes.md). */
  outcomes?: ManifestOutcomes | undefined;
  /** `segments`: source columns (each with at most a few hundred values) whose every value is watched per run (src/features/segments). */
  segments?: string[] | undefined;
}

export interface ManifestSource {
  table: string;
  /** Key column (an integer, uuid or text column): chunk ranges and score rows are keyed by it. */
  key: string;
  /** A timestamp column the source sets when a row changes: `run --only-new` rescores rows changed since its base run started. */
  updatedColumn?: string | undefined;
}

export interface ManifestOutput {
  /** What the score is, e.g. `churn_probability`. */
  name: string;
  description: string;
  /**
   * Which output unit is the score, counting across the model's outputs in order. Undefined when the
   * manifest leaves it out: then the model must have exactly one output unit (checked by loadModel).
   */
  unit: number | undefined;
  /**
   * The model output that holds the score, by name: a graph model's signature output key (or node name), a
   * layers model's output layer name. With it, `unit` counts within that output only.
   */
  from?: string | undefined;
  /**
   * Named score bands, lowest first (`customer_scores.band`): each band but the last has `below`, its
   * exclusive upper bound, strictly increasing; band i holds `bands[i-1].below <= score < bands[i].below`.
   */
  bands?: ManifestBand[] | undefined;
}

/** One score band of `output.bands`; the last band has no `below`. */
export interface ManifestBand {
  name: string;
  below?: number | undefined;
}

/**
 * `fill` is the value a NULL is replaced with, in the column's own terms (a number before standardizing,
 * a category, a boolean). No `fill`: a NULL sends the row to score_rejects.
 */
export type Feature = StandardizeFeature | OneHotFeature | BooleanFeature | RawFeature | IndexFeature;

/** What every feature has. */
export interface FeatureBase {
  column: string;
  /**
   * The model input (by name) this feature feeds. May be left out when the model has one input; required
   * for each feature of a model with several.
   */
  input?: string | undefined;
}

/** A number, fed to the model as `(value - mean) / std`. */
export interface StandardizeFeature extends FeatureBase {
  transform: 'standardize';
  mean: number;
  std: number;
  /** The range seen in training; values outside it are counted (they are still scored). */
  min?: number | undefined;
  max?: number | undefined;
  fill?: number | undefined;
}

/** A category, fed as one input per category (1 for its own, 0 elsewhere; all 0 for an unknown one). */
export interface OneHotFeature extends FeatureBase {
  transform: 'one_hot';
  categories: string[];
  fill?: string | undefined;
}

/** A boolean, fed as 1 or 0. */
export interface BooleanFeature extends FeatureBase {
  transform: 'boolean';
  fill?: boolean | undefined;
}

/** A number fed as stored (for a model that normalizes its own inputs). */
export interface RawFeature extends FeatureBase {
  transform: 'raw';
  /** The range seen in training; values outside it are counted (they are still scored). */
  min?: number | undefined;
  max?: number | undefined;
  fill?: number | undefined;
}

/**
 * A category fed as one integer: its position in `categories` (0-based), `unknown` for a value not listed.
 * For an `Embedding` or a lookup of a Keras model (int32 where the model's input is int32).
 */
export interface IndexFeature extends FeatureBase {
  transform: 'index';
  categories: string[];
  /** The id of a value not in `categories`; default `categories.length` (one past the last). */
  unknown?: number | undefined;
  /** A NULL's id: a category (its position) or a whole number id (e.g. the `unknown` id). */
  fill?: string | number | undefined;
}

/**
 * Ids are carried in the float32 model input row (the chunk loop's one array) and converted to int32 for
 * the model: every integer up to 2^24 is exact in float32, none beyond all are.
 */
export { maxIndexId };

/** The id an index feature gives an unknown category. */
export function unknownId(f: IndexFeature): number {
  return f.unknown ?? f.categories.length;
}

/** The id an index feature gives a NULL (undefined: no fill, the row is rejected). */
export function nullId(f: IndexFeature): number | undefined {
  return typeof f.fill === 'string' ? f.categories.indexOf(f.fill) : f.fill;
}

export type Transform = Feature['transform'];
export const transforms: readonly Transform[] = ['standardize', 'one_hot', 'boolean', 'raw', 'index'];

export const defaultSource: Readonly<ManifestSource> = Object.freeze({ table: 'customers', key: 'customer_id' });

/**
 * Splits `schema.table` (or a bare `table`, left to the search_path) as the manifest writes it.
 * @internal exported for tests
 */
export function splitTableName(table: string): { schema: string | undefined; name: string } {
  const dot = table.indexOf('.');
  return dot < 0 ? { schema: undefined, name: table } : { schema: table.slice(0, dot), name: table.slice(dot + 1) };
}

/** Validates parsed `manifest.json` content; `file` is how messages name the file. */
export function parseManifest(json: unknown, file: string): Manifest {
  const r = new Reader(file);
  const top = r.object(json, '');
  r.only(top, '', ['name', 'version', 'draft', 'description', 'source', 'features', 'output', 'checks', 'training', 'outcomes', 'segments']);
  if (top.draft !== undefined && typeof top.draft !== 'boolean')
    r.fail('draft', `must be true (a draft nobody has reviewed yet) or left out (got ${describe(top.draft)})`);
  const manifest: Manifest = {
    name: r.name(top.name, 'name'),
    version: r.name(top.version, 'version'),
    // Right after the version, where a person reviewing the file reads it first.
    ...(top.draft === true ? { draft: true as const } : {}),
    description: top.description === undefined ? '' : r.string(top.description, 'description'),
    source: parseSource(r, top.source),
    features: parseFeatures(r, top.features),
    output: parseOutput(r, top.output),
  };
  Object.assign(manifest, parseManifestInputs(top, file));
  if (top.training !== undefined) manifest.training = r.object(top.training, 'training');

  if (top.outcomes !== undefined) manifest.outcomes = parseOutcomes(top.outcomes, file);
  if (top.segments !== undefined) manifest.segments = parseSegments(r, top.segments);
  return manifest;
}

/** `segments`: a non-empty list of distinct source column names. */
function parseSegments(r: Reader, value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0) r.fail('segments', 'must be a non-empty array of source column names, e.g. ["region"]');
  const seen = new Set<string>();
  return value.map((c: unknown, i) => {
    const column = r.identifier(c, `segments[${i}]`);
    if (seen.has(column)) r.fail(`segments[${i}]`, `"${column}" is listed twice`);
    seen.add(column);
    return column;
  });
}

function parseSource(r: Reader, value: unknown): ManifestSource {
  if (value === undefined) return { ...defaultSource };
  const o = r.object(value, 'source');
  r.only(o, 'source', ['table', 'key', 'updated_column', 'ready_when']);
  const table = o.table === undefined ? defaultSource.table : r.string(o.table, 'source.table');
  const parts = table.split('.');
  if (parts.length > 2 || parts.some((p) => p === '')) {
    r.fail('source.table', `must be "table" or "schema.table" (got "${table}")`);
  }
  for (const part of parts) r.identifier(part, 'source.table');
  if (Array.isArray(o.key))
    r.fail(
      'source.key',
      'names one column: a key of several columns is not supported; read a view with one key column instead (docs/models.md, "Source keys")',
    );
  const source: ManifestSource = { table, key: o.key === undefined ? defaultSource.key : r.identifier(o.key, 'source.key') };
  if (o.updated_column !== undefined) source.updatedColumn = r.identifier(o.updated_column, 'source.updated_column');
  return source;
}

function parseFeatures(r: Reader, value: unknown): Feature[] {
  if (!Array.isArray(value) || value.length === 0) r.fail('features', 'must be a non-empty array');
  const seen = new Map<string, number>();
  return value.map((item: unknown, i) => {
    const at = `features[${i}]`;
    const feature = parseFeature(r, item, at);
    const first = seen.get(feature.column);
    if (first !== undefined) r.fail(`${at}.column`, `"${feature.column}" is already used by features[${first}]`);
    seen.set(feature.column, i);
    return feature;
  });
}

function parseFeature(r: Reader, value: unknown, at: string): Feature {
  const o = r.object(value, at);
  const feature = parseTransform(r, o, at);
  if (o.input !== undefined) feature.input = r.name(o.input, `${at}.input`);
  return feature;
}

function parseTransform(r: Reader, o: Record<string, unknown>, at: string): Feature {
  const column = r.identifier(o.column, `${at}.column`);
  switch (o.transform) {
    case 'standardize': {
      r.only(o, at, ['column', 'transform', 'input', 'mean', 'std', 'min', 'max', 'fill']);
      const f: StandardizeFeature = { column, transform: 'standardize', mean: r.finite(o.mean, `${at}.mean`), std: r.positive(o.std, `${at}.std`) };
      if (o.min !== undefined) f.min = r.finite(o.min, `${at}.min`);
      if (o.max !== undefined) f.max = r.finite(o.max, `${at}.max`);
      if (f.min !== undefined && f.max !== undefined && f.min > f.max) r.fail(`${at}.min`, `(${f.min}) must not exceed max (${f.max})`);
      if (o.fill !== undefined) f.fill = r.finite(o.fill, `${at}.fill`);
      // Every NULL would reach the model as ±Infinity (the per-row non_finite check covers values, not the fill).
      if (f.fill !== undefined && !Number.isFinite(Math.fround((f.fill - f.mean) / f.std))) {
        r.fail(`${at}.fill`, `(${f.fill}) gives the model a non-finite input: (fill - mean) / std overflows float32`);
      }
      return f;
    }
    case 'one_hot': {
      r.only(o, at, ['column', 'transform', 'input', 'categories', 'fill']);
      const categories = parseCategories(r, o.categories, `${at}.categories`);
      const f: OneHotFeature = { column, transform: 'one_hot', categories };
      if (o.fill !== undefined) {
        const fill = r.string(o.fill, `${at}.fill`);
        if (!categories.includes(fill)) r.fail(`${at}.fill`, `"${fill}" must be one of categories`);
        f.fill = fill;
      }
      return f;
    }
    case 'boolean': {
      r.only(o, at, ['column', 'transform', 'input', 'fill']);
      const f: BooleanFeature = { column, transform: 'boolean' };
      if (o.fill !== undefined) {
        if (typeof o.fill !== 'boolean') r.fail(`${at}.fill`, 'must be true or false');
        f.fill = o.fill;
      }
      return f;
    }
    case 'raw': {
      r.only(o, at, ['column', 'transform', 'input', 'min', 'max', 'fill']);
      const f: RawFeature = { column, transform: 'raw' };
      if (o.min !== undefined) f.min = r.finite(o.min, `${at}.min`);
      if (o.max !== undefined) f.max = r.finite(o.max, `${at}.max`);
      if (f.min !== undefined && f.max !== undefined && f.min > f.max) r.fail(`${at}.min`, `(${f.min}) must not exceed max (${f.max})`);
      if (o.fill !== undefined) f.fill = r.finite(o.fill, `${at}.fill`);
      if (f.fill !== undefined && !Number.isFinite(Math.fround(f.fill))) r.fail(`${at}.fill`, `(${f.fill}) is beyond float32's range`);
      return f;
    }
    case 'index':
      return parseIndex(r, o, column, at);
    default:
      return r.fail(`${at}.transform`, `must be one of ${transforms.join(', ')} (got ${describe(o.transform)})`);
  }
}

function parseIndex(r: Reader, o: Record<string, unknown>, column: string, at: string): IndexFeature {
  r.only(o, at, ['column', 'transform', 'input', 'categories', 'unknown', 'fill']);
  const categories = parseCategories(r, o.categories, `${at}.categories`);
  if (categories.length >= maxIndexId)
    r.fail(`${at}.categories`, `has ${categories.length} entries; index ids must stay below 2^24 (${maxIndexId}) to be exact in float32`);
  const f: IndexFeature = { column, transform: 'index', categories };
  if (o.unknown !== undefined) f.unknown = r.id(o.unknown, `${at}.unknown`);
  if (typeof o.fill === 'string') {
    if (!categories.includes(o.fill)) r.fail(`${at}.fill`, `"${o.fill}" must be one of categories (or a whole number id)`);
    f.fill = o.fill;
  } else if (o.fill !== undefined) {
    f.fill = r.id(o.fill, `${at}.fill`);
  }
  return f;
}

function parseCategories(r: Reader, value: unknown, at: string): string[] {
  if (!Array.isArray(value) || value.length === 0) r.fail(at, 'must be a non-empty array of strings');
  const seen = new Set<string>();
  return value.map((c: unknown, i) => {
    if (typeof c !== 'string') r.fail(`${at}[${i}]`, `must be a string (got ${describe(c)})`);
    if (seen.has(c)) r.fail(`${at}[${i}]`, `"${c}" is listed twice`);
    seen.add(c);
    return c;
  });
}

function parseOutput(r: Reader, value: unknown): ManifestOutput {
  const o = r.object(value, 'output');
  r.only(o, 'output', ['name', 'description', 'unit', 'from', 'bands']);
  let unit: number | undefined;
  if (o.unit !== undefined) {
    if (typeof o.unit !== 'number' || !Number.isInteger(o.unit) || o.unit < 0) r.fail('output.unit', `must be a whole number >= 0 (got ${describe(o.unit)})`);
    unit = o.unit;
  }
  const output: ManifestOutput = {
    name: r.name(o.name, 'output.name'),
    description: o.description === undefined ? '' : r.string(o.description, 'output.description'),
    unit,
  };
  if (o.from !== undefined) output.from = r.name(o.from, 'output.from');
  if (o.bands !== undefined) output.bands = parseBands(r, o.bands);
  return output;
}

/** `output.bands`: at least two, names unique, `below` on every band but the last and strictly increasing. */
function parseBands(r: Reader, value: unknown): ManifestBand[] {
  const at = 'output.bands';
  if (!Array.isArray(value) || value.length < 2)
    r.fail(at, 'must be an array of at least two bands, lowest first, e.g. [{"name": "low", "below": 0.3}, {"name": "high"}]');
  const names = new Set<string>();
  let previous = -Infinity;
  return value.map((item: unknown, i) => {
    const o = r.object(item, `${at}[${i}]`);
    r.only(o, `${at}[${i}]`, ['name', 'below']);
    const name = r.name(o.name, `${at}[${i}].name`);
    if (names.has(name)) r.fail(`${at}[${i}].name`, `"${name}" is used twice`);
    names.add(name);
    if (i === value.length - 1) {
      if (o.below !== undefined) r.fail(`${at}[${i}].below`, 'must be left out on the last band (it has no upper bound)');
      return { name };
    }
    const below = r.finite(o.below, `${at}[${i}].below`);
    if (below <= previous) r.fail(`${at}[${i}].below`, `(${below}) must be greater than the band before's (${previous})`);
    previous = below;
    return { name, below };
  });
}
