import { join } from 'node:path';
import type pg from 'pg';
import { combineSidecars, type ChunkSidecar } from '../../chunks/chunkLoop.js';
import type { ColumnBatch, ColumnSpec } from '../../columns.js';
import { quoteIdent, quoteQualified } from '../../db/sql.js';
import { SqlState, sqlStateOf } from '../../db/sqlstate.js';
import { GateError, UsageError } from '../../errors.js';
import type { RunParams } from '../../ledger/ledger.js';
import type { Logger } from '../../log.js';
import type { LoadedModel } from '../../model/load.js';
import type { ChunkRead, ChunkReadScope, RunFeature, RunFeatureDefinition, StatisticsScope } from '../feature.js';
import { SegmentCounter, segmentLayout, type SegmentLayout } from './segmentCounter.js';
import { segmentLabel, segmentPsiGateBreach, segmentRows, segmentSummary } from './segmentDrift.js';
import { SegmentStore, sourceSegmentValues } from './segmentStore.js';

type SegmentsParams = NonNullable<RunParams['segments']>;

/**
 * A segment column's values are found when the run starts; beyond this many, the most frequent are
 * segments and the rest count together as "other" (a column of a few hundred values at most is the use).
 */
export const maxSegmentValues = 500;

/**
 * Per-segment drift (docs/models.md "Segments"): for each column of the manifest's `segments`, the run
 * finds the column's values when it starts (stored in its params, so a resume and every worker count into
 * the same slots), each chunk counts per value the rows scored and rejected, the sum of the scores, the
 * scores in the PSI's bins and in the bands, and stores the counts in the chunk's transaction; at
 * statistics time the counts are merged, each segment is stored with its PSI against the previous
 * published run, and the `--max-segment-psi` gate names the segments over it.
 */
export const segments: RunFeatureDefinition = {
  name: 'segments',
  forStart: (opts, model, env) => {
    if (opts.onlyNew) {
      // An only-new layer scores the new and changed customers only: every segment would look drifted.
      if (opts.maxSegmentPsi !== undefined)
        env.log.info(
          { max_segment_psi: opts.maxSegmentPsi },
          'an only-new run reads only the new and changed customers: segments are not measured and the --max-segment-psi gate does not apply',
        );
      return undefined;
    }
    const columns = model.manifest.segments;
    if (!columns) {
      if (opts.maxSegmentPsi === undefined) return undefined;
      throw new UsageError(
        `--max-segment-psi needs the manifest's segments, and ${join(model.dir, 'manifest.json')} has none: add the columns to watch, e.g. "segments": ["region"]`,
      );
    }
    return segmentsFeature(model, { discover: columns, maxSegmentPsi: opts.maxSegmentPsi ?? null, log: env.log });
  },
  forResume: (params, model) => (params.segments ? segmentsFeature(model, { params: params.segments }) : undefined),
  forWorker: ({ run, model }) => (run.params.segments ? segmentsFeature(model, { params: run.params.segments }) : undefined),
};

type Made = { params: SegmentsParams } | { discover: readonly string[]; maxSegmentPsi: number | null; log: Logger };

function segmentsFeature(model: LoadedModel, made: Made): RunFeature {
  const bands = model.manifest.output.bands ?? [];
  const bandBounds = bands.slice(0, -1).map((b) => b.below as number);
  const bandNames = bands.map((b) => b.name);
  const source = model.manifest.source;
  // Known once the run's spec is made (a new run) or from the run's params (a resume, a worker).
  let params = 'params' in made ? made.params : undefined;
  let layout: SegmentLayout | undefined = params && segmentLayout(params.columns, bandBounds);
  const ready = (): { params: SegmentsParams; layout: SegmentLayout } => {
    if (!params || !layout) throw new Error('segments: the run has no segment values yet (its spec was not made)');
    return { params, layout };
  };
  return {
    name: 'segments',
    describe: () => {
      const n = params?.columns.length ?? ('discover' in made ? made.discover.length : 0);
      const max = params?.maxSegmentPsi ?? ('discover' in made ? made.maxSegmentPsi : null);
      return { fields: { segments: n, ...(max !== null ? { max_segment_psi: max } : {}) } };
    },
    check: 'discover' in made ? (client) => checkColumns(client, model, made.discover) : undefined,
    spec: async (client) => {
      if ('discover' in made) {
        params = { columns: await discoverValues(client, source, made.discover, made.log), maxSegmentPsi: made.maxSegmentPsi };
        layout = segmentLayout(params.columns, bandBounds);
      }
      return { segments: ready().params };
    },
    chunkRead: (read, s) => segmentRead(read, s, ready()),
    statistics: (s) => recordSegments(s, { ...ready(), bandNames }),
  };
}

/** Before anything is written: each segment column is in the source (exit 2 naming it otherwise). */
async function checkColumns(client: pg.ClientBase, model: LoadedModel, columns: readonly string[]): Promise<void> {
  for (const [i, column] of columns.entries()) {
    try {
      await client.query(`SELECT ${quoteIdent(column)} FROM ${quoteQualified(model.manifest.source.table)} LIMIT 0`);
    } catch (err) {
      if (sqlStateOf(err) !== SqlState.undefinedColumn) throw err;
      throw new UsageError(`${join(model.dir, 'manifest.json')}: segments[${i}] names column "${column}", which ${model.manifest.source.table} does not have`, {
        cause: err,
      });
    }
  }
}

async function discoverValues(client: pg.ClientBase, source: { table: string }, columns: readonly string[], log: Logger): Promise<SegmentsParams['columns']> {
  const found = await sourceSegmentValues(client, source, columns, maxSegmentValues);
  return columns.map((column, k) => {
    if (found[k]!.more)
      log.warn(
        { segment: column, segment_values: maxSegmentValues },
        `segment column ${column} has more than ${maxSegmentValues} values: the ${maxSegmentValues} with the most rows are segments, the others count together as ${column}=(other)`,
      );
    return { column, values: found[k]!.values };
  });
}

/**
 * The chunk read with each segment column counted beside the chunk. A segment column that is also a
 * category feature whose categories hold every one of the segment's values is counted from the feature's
 * column (read once); any other is read as text of its own, matched against its values.
 */
function segmentRead(read: ChunkRead, s: ChunkReadScope, d: { params: SegmentsParams; layout: SegmentLayout }): ChunkRead {
  const before = read.columns.length;
  const own: ColumnSpec[] = [];
  const batchColumn = d.params.columns.map((c) => {
    const shared = read.columns.findIndex((f) => f.name === c.column && f.kind === 'category' && c.values.every((v) => f.categories?.includes(v)));
    if (shared >= 0) return shared;
    own.push({ name: c.column, kind: 'category', categories: c.values });
    return before + own.length - 1;
  });
  const counter = new SegmentCounter(d.layout, batchColumn);
  const inner = read.transform;
  const store = new SegmentStore(s.ledger.schema);
  const sidecar: ChunkSidecar = {
    async prepare(_x, rows, scores, batch) {
      counter.addScores(batch, scores, rows);
    },
    seal(_keys, _accepted, chunkNo) {
      // The chunk's own copy: the next chunk is counted while this one is written.
      const counts = Array.from(counter.counts);
      return (c) => store.insertChunkCounts(c, s.runId, chunkNo, counts);
    },
  };
  return {
    columns: [...read.columns, ...own],
    transform: (batch, out, rejects) => {
      const accepted = inner(firstColumns(batch, before), out, rejects);
      counter.rowsAccepted(batch, out.keys, accepted);
      return accepted;
    },
    sidecar: combineSidecars([read.sidecar, sidecar]),
  };
}

/** The first `n` columns of a batch (the transforms inside this one read only those). */
function firstColumns(batch: ColumnBatch, n: number): ColumnBatch {
  return batch.columns.length === n ? batch : { ...batch, columns: batch.columns.slice(0, n) };
}

async function recordSegments(s: StatisticsScope, d: { params: SegmentsParams; layout: SegmentLayout; bandNames: readonly string[] }): Promise<void> {
  const store = new SegmentStore(s.ledger.schema);
  const merged = await store.mergedCounts(s.client, s.runId, d.layout.total);
  // The run readers saw when this one started (the --max-psi gate's baseline), if it counted segments.
  const previousRunId = s.statistics.drift.baseline_run_id;
  const previous = previousRunId ? await store.runSegments(s.client, previousRunId) : new Map();
  const rows = segmentRows(d.layout, merged, d.bandNames, previous);
  await store.saveRunSegments(s.client, s.runId, previous.size > 0 ? previousRunId : null, rows);
  const summary = segmentSummary(rows, previousRunId);
  s.stats.segments = summary;
  const top = summary.top[0];
  s.log.info(
    {
      segments: summary.segments,
      top_segment: top ? segmentLabel(top) : null,
      top_segment_psi: top?.psi_previous ?? null,
      previous_run_id: summary.previous_run_id,
    },
    'segments recorded',
  );
  const breach = segmentPsiGateBreach(rows, previousRunId, d.params.maxSegmentPsi);
  if (breach) throw new GateError(`${breach}; the scores are kept unpublished for inspection (\`scorejob runs show ${s.runId}\`)`);
}
