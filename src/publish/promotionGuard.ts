import type pg from 'pg';
import { UsageError } from '../errors.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log.js';

/** The model a run is about to publish: its name and the sha256 of its files. */
export interface RunModel {
  name: string;
  version: string;
  dir: string;
  sha256: string;
}

/**
 * A run never silently replaces a sibling run that a person published by hand (a feature's publish, e.g. of a
 * second model scored beside a run) with another model's scores: when the model's pointer names a sibling run
 * whose files (sha256) are not the run's model's, the run is refused (exit 2) before anything is written, unless
 * `replace` (`run --replace-promoted`) says to go back, which is then logged at warn. A run of the sibling's own files
 * (its directory given as --model) goes on: that is how the schedule keeps the promotion. A dry run
 * publishes nothing and is never refused. `where` names the database. A resume of a run started with
 * `--replace-promoted` goes on over the same promoted run (`replaces`: recorded on the run), not over another.
 * Returns the promoted run this run replaces, if any.
 */
export async function checkPromotion(
  c: pg.ClientBase,
  ledger: Ledger,
  model: RunModel,
  opts: { dryRun: boolean; replace: boolean; replaces?: string | undefined; where: string; log: Logger; command: 'run' | 'resume' },
): Promise<string | undefined> {
  if (opts.dryRun) return undefined;
  const p = await ledger.publications.currentPromotion(c, model.name);
  if (p === undefined || p.model_sha256 === model.sha256) return undefined;
  const shown =
    `${ledger.schema}.customer_scores for ${model.name} on ${opts.where} shows the ${p.kind} ${p.manifest_name} ${p.model_version} (run ${p.run_id}, ${p.kind} of run ${p.champion_run_id}), ` +
    `published by hand by ${p.by} on ${p.published_at.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  if (opts.replace || opts.replaces === p.run_id) {
    opts.log.warn(
      { model: model.name, promoted_run_id: p.run_id, promoted_version: p.model_version, replace_promoted: true },
      `${shown}; --replace-promoted: this run of ${model.dir} (version ${model.version}) replaces it once it publishes`,
    );
    return p.run_id;
  }
  const back = opts.command === 'run' ? 'run once with `scorejob run --replace-promoted`' : 'start a new run with `scorejob run --replace-promoted`';
  throw new UsageError(
    `${shown}; this ${opts.command} of ${model.dir} (version ${model.version}) would replace it with another model's scores: ` +
      `to keep the ${p.kind}, point --model at its directory (${p.model_dir}) for this and every scheduled run; to go back to this model, ${back}`,
  );
}
