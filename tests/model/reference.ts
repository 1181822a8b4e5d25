/**
 * The reference model of the model-based tests (tests/db/composeModel.test.ts): what every reader view
 * must show after a sequence of operations, written from docs/downstream-semantics.md and computed from
 * the source rows and a plain-JavaScript forward pass, never from scorejob's own tables.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { dense, readWeights, relu, sigmoid, weight, type Weight } from '../helpers/forwardPass.js';

interface Feature {
  column: string;
  transform: 'standardize' | 'one_hot' | 'boolean';
  mean?: number;
  std?: number;
  categories?: string[];
  fill?: number | string | boolean;
}

/** The shipped model's forward pass (three dense layers) over a source table, as the manifest in `dir` transforms it. */
export class ReferenceScorer {
  private constructor(
    private readonly features: Feature[],
    private readonly w: Map<string, Weight>,
  ) {}

  static async load(dir: string): Promise<ReferenceScorer> {
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { features: Feature[] };
    return new ReferenceScorer(manifest.features, await readWeights(dir));
  }

  /** customer_id -> score of every scorable row of `table` (a row with a NULL and no fill is rejected: absent). */
  async scoreTable(pool: pg.Pool, table: string): Promise<Map<string, number>> {
    const cols = this.features.map((f) => `${f.column}::text AS ${f.column}`).join(', ');
    const { rows } = await pool.query<Record<string, string | null>>(`SELECT customer_id::text AS key, ${cols} FROM ${table}`);
    const out = new Map<string, number>();
    for (const row of rows) {
      const x = this.inputs(row);
      if (x === undefined) continue;
      const h1 = relu(dense(x, weight(this.w, 'hidden_1/kernel'), weight(this.w, 'hidden_1/bias')));
      const h2 = relu(dense(h1, weight(this.w, 'hidden_2/kernel'), weight(this.w, 'hidden_2/bias')));
      out.set(row.key as string, sigmoid(dense(h2, weight(this.w, 'churn_probability/kernel'), weight(this.w, 'churn_probability/bias')))[0]!);
    }
    return out;
  }

  private inputs(row: Record<string, string | null>): number[] | undefined {
    const x: number[] = [];
    for (const f of this.features) {
      let v: string | number | boolean | null = row[f.column] ?? null;
      if (v === null) {
        if (f.fill === undefined) return undefined;
        v = f.fill;
      }
      if (f.transform === 'standardize') x.push((Number(v) - (f.mean ?? 0)) / (f.std ?? 1));
      else if (f.transform === 'boolean') x.push(v === true || v === 'true' ? 1 : 0);
      else for (const c of f.categories ?? []) x.push(c === String(v) ? 1 : 0);
    }
    return x;
  }
}

/** A run as the reference knows it. */
export interface RefRun {
  id: string;
  kind: 'full' | 'only_new' | 'challenger';
  /** customer_id -> score the run publishes. */
  scores: Map<string, number>;
  /** customer_id -> the run that computed the score (itself, or the run it was carried from). */
  scoredBy: Map<string, string>;
  reasons: boolean;
  /** only-new: the full run whose scores it carries. */
  under?: string | undefined;
  /** The reference step at which it started (a customer changed after it is rescored by an only-new run on it). */
  step: number;
  rowsScored: number;
}

export interface RefPublication {
  run: string;
  from: string | null;
  kind: 'full' | 'only-new' | 'challenger' | 'rollback' | 'retire';
  compare: string | null;
}

/** The state a sequence of operations leads to. */
export class Reference {
  runs = new Map<string, RefRun>();
  publications: RefPublication[] = [];
  current: string | undefined;
  /** Runs retention may have dropped (the rule keeps at least the newest keep-1 besides the current and its layer's base). */
  maybeDropped = new Set<string>();
  /** customer_id -> step of its last insert or update. */
  changedAt = new Map<string, number>();
  step = 0;
  /** Operations run (a step whose precondition failed is not run). */
  executed = 0;
  /** The --keep-runs of the last run (a challenger's publish applies its champion's). */
  lastKeep = 3;
  /** The challenger run scored beside the last run, publishable until the next run. */
  pendingChallenger: string | undefined;

  /** An independent copy (each sequence starts from the template's state). */
  copy(): Reference {
    return Object.assign(new Reference(), structuredClone({ ...this }));
  }

  get compare(): string | null {
    return this.publications.at(-1)?.compare ?? null;
  }

  /** Kept for certain: the current run, the full run it lies on, and any run retention cannot have reached. */
  kept(runId: string): boolean {
    const cur = this.current === undefined ? undefined : this.runs.get(this.current);
    return runId === cur?.id || runId === cur?.under || !this.maybeDropped.has(runId);
  }

  /** "Since last month": an only-new layer compares with the publication before the full run it lies on. */
  publish(run: RefRun, kind: RefPublication['kind']): void {
    const from = this.current ?? null;
    let compare = from;
    if (kind !== 'rollback' && kind !== 'challenger' && run.under !== undefined) {
      const onUnder = (id: string | null) => id !== null && (id === run.under || this.runs.get(id)?.under === run.under);
      const before = [...this.publications].reverse().find((p) => p.run === run.under && !onUnder(p.from));
      if (before) compare = before.from;
    }
    this.publications.push({ run: run.id, from, kind, compare });
    this.current = run.id;
  }

  /** `model retire`: no run is current; the model's next publication compares with nothing. */
  retire(): void {
    const cur = this.current as string;
    this.publications.push({ run: cur, from: cur, kind: 'retire', compare: null });
    this.current = undefined;
  }

  /** After a publish that applied `--keep-runs keep`: the published runs beyond the newest keep-1 besides the current may be gone. */
  retain(keep: number): void {
    const published = [...new Set(this.publications.map((p) => p.run))].filter((id) => id !== this.current).sort((a, b) => Number(b) - Number(a));
    for (const id of published.slice(Math.max(0, keep - 1))) this.maybeDropped.add(id);
  }

  /** An only-new run on the current run: the customers new or changed since it started are rescored, the others carried. */
  layer(id: string, fresh: Map<string, number>, sourceKeys: Set<string>, reasons: boolean, startStep: number): RefRun {
    const base = this.runs.get(this.current as string) as RefRun;
    const scores = new Map<string, number>();
    const scoredBy = new Map<string, string>();
    let rowsScored = 0;
    for (const key of sourceKeys) {
      const carried = base.scores.has(key) && (this.changedAt.get(key) ?? -1) < base.step;
      if (carried) {
        scores.set(key, base.scores.get(key)!);
        scoredBy.set(key, base.scoredBy.get(key)!);
        continue;
      }
      const s = fresh.get(key);
      if (s !== undefined) {
        rowsScored++;
        scores.set(key, s);
        scoredBy.set(key, id);
      }
    }
    return { id, kind: 'only_new', scores, scoredBy, reasons, under: base.under ?? base.id, step: startStep, rowsScored };
  }
}
