/**
 * Per-feature data statistics, summed over every row read (rejected ones too), so a run can report
 * how its input looked. Arrays are indexed like the plan's `features`.
 */
export interface FeatureCounters {
  rows: number;
  /** NULLs (filled or rejected). */
  nulls: Float64Array;
  /** Finite values below the manifest's `min` / above its `max` (standardize features with a range). */
  belowMin: Float64Array;
  aboveMax: Float64Array;
  /** Non-NULL values not among the categories of a one_hot feature (fed as all zeros) or an index feature (fed as its unknown id). */
  unknownCategory: Float64Array;
}

/** What the statistics read of a compiled feature plan (model/features.ts `FeaturePlan`): each feature's column, transform and training range. */
export interface CountedPlan {
  readonly features: readonly {
    readonly feature: { readonly column: string; readonly transform: string; readonly min?: number | undefined; readonly max?: number | undefined };
  }[];
}

/**
 * A chunk's feature counters as stored in `score_chunks.stats.features` (beside its score statistics,
 * in the chunk's own transaction, so a resumed run's counters still cover every chunk). Arrays are
 * indexed like `columns`, the manifest's features in order.
 */
export interface FeatureCounts {
  rows: number;
  columns: string[];
  nulls: number[];
  below_min: number[];
  above_max: number[];
  unknown_category: number[];
}

/** One feature of a run, as stored on `score_runs.stats.features` and shown by `runs show`. */
export interface FeatureSummary {
  column: string;
  transform: string;
  nulls: number;
  null_fraction: number;
  /** The training range from the manifest, when it has one (standardize features). */
  min: number | null;
  max: number | null;
  below_min: number;
  above_max: number;
  /** (below_min + above_max) / rows. */
  outside_range_fraction: number;
  unknown_category: number;
  unknown_category_fraction: number;
}

export interface FeaturesSummary {
  /** Rows read, rejected ones included. */
  rows: number;
  features: FeatureSummary[];
}

export function toFeatureCounts(plan: CountedPlan, c: FeatureCounters): FeatureCounts {
  return {
    rows: c.rows,
    columns: plan.features.map((f) => f.feature.column),
    nulls: Array.from(c.nulls),
    below_min: Array.from(c.belowMin),
    above_max: Array.from(c.aboveMax),
    unknown_category: Array.from(c.unknownCategory),
  };
}

function isFeatureCounts(v: unknown): v is FeatureCounts {
  const o = v as Partial<FeatureCounts> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.rows === 'number' &&
    Array.isArray(o.columns) &&
    Array.isArray(o.nulls) &&
    Array.isArray(o.below_min) &&
    Array.isArray(o.above_max) &&
    Array.isArray(o.unknown_category)
  );
}

/** The feature counts inside a chunk's stats jsonb, if it has them (chunks of older versions do not). */
export function chunkFeatureCounts(chunkStats: unknown): FeatureCounts | undefined {
  const f = (chunkStats as { features?: unknown } | null)?.features;
  return isFeatureCounts(f) ? f : undefined;
}

/** Sums chunk counts of the same feature list; parts with another list (never, within one run) are skipped. */
export function mergeFeatureCounts(parts: readonly FeatureCounts[]): FeatureCounts | undefined {
  const first = parts[0];
  if (!first) return undefined;
  const n = first.columns.length;
  const out: FeatureCounts = { rows: 0, columns: [...first.columns], nulls: zeros(n), below_min: zeros(n), above_max: zeros(n), unknown_category: zeros(n) };
  for (const p of parts) {
    if (p.columns.length !== n || p.columns.some((c, i) => c !== first.columns[i])) continue;
    out.rows += p.rows;
    for (let i = 0; i < n; i++) {
      out.nulls[i]! += p.nulls[i] ?? 0;
      out.below_min[i]! += p.below_min[i] ?? 0;
      out.above_max[i]! += p.above_max[i] ?? 0;
      out.unknown_category[i]! += p.unknown_category[i] ?? 0;
    }
  }
  return out;
}

function zeros(n: number): number[] {
  return new Array<number>(n).fill(0);
}

/** Counts to fractions of the rows read, with each feature's transform and training range. */
export function summarizeFeatures(plan: CountedPlan, counts: FeatureCounts): FeaturesSummary {
  const share = (k: number) => (counts.rows === 0 ? 0 : k / counts.rows);
  const features = counts.columns.map((column, i): FeatureSummary => {
    const feature = plan.features.find((f) => f.feature.column === column)?.feature;
    const range =
      feature?.transform === 'standardize' || feature?.transform === 'raw' ? { min: feature.min ?? null, max: feature.max ?? null } : { min: null, max: null };
    const nulls = counts.nulls[i] ?? 0;
    const below = counts.below_min[i] ?? 0;
    const above = counts.above_max[i] ?? 0;
    const unknown = counts.unknown_category[i] ?? 0;
    return {
      column,
      transform: feature?.transform ?? 'unknown',
      nulls,
      null_fraction: share(nulls),
      ...range,
      below_min: below,
      above_max: above,
      outside_range_fraction: share(below + above),
      unknown_category: unknown,
      unknown_category_fraction: share(unknown),
    };
  });
  return { rows: counts.rows, features };
}
