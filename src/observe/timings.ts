/**
 * Wall time per stage of a run, ms: what `npm run bench` and the run summary report. `write` is the
 * writer's busy time (it overlaps the next chunk's transform and predict); `writeWait` the part of it
 * the loop waited for; `read` the wait for the chunk read ahead; `statistics` the run's statistics and
 * percentile cut points before the gates.
 */
export type Stage = 'plan' | 'read' | 'transform' | 'predict' | 'write' | 'writeWait' | 'statistics' | 'publish';

export class StageTimings {
  readonly ms: Record<Stage, number> = { plan: 0, read: 0, transform: 0, predict: 0, write: 0, writeWait: 0, statistics: 0, publish: 0 };
  add(stage: Stage, ms: number): void {
    this.ms[stage] += ms;
  }
  /** Rounded to 0.1 ms for logs and the ledger. */
  toJSON(): Record<Stage, number> {
    const out = { ...this.ms };
    for (const k of Object.keys(out) as Stage[]) out[k] = Math.round(out[k] * 10) / 10;
    return out;
  }
}
