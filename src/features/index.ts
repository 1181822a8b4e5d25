import { challenger } from './challenger/challengerFeature.js';
import { featureDrift } from './feature-drift/featureDriftFeature.js';
import { inputChecks } from './input-checks/inputChecksFeature.js';
import type { RunFeature, RunFeatureDefinition } from './feature.js';
import { onlyNew } from './only-new/onlyNewFeature.js';
import { outcomes } from './outcomes/outcomesFeature.js';
import { readiness } from './readiness/readinessFeature.js';
import { reasons } from './reasons/reasonsFeature.js';
import { segments } from './segments/segmentsFeature.js';

export type * from './feature.js';

/** Every run feature, in the order the run calls their hooks. Adding a feature: its folder and one line here. */
export const runFeatures: readonly RunFeatureDefinition[] = [readiness, inputChecks, reasons, onlyNew, challenger, featureDrift, segments, outcomes];

/**
 * The run's features, made in registration order by `make` (each returns undefined when the run does not
 * use it). A refusal frees the ones already made and is thrown as it is.
 */
export async function makeFeatures(
  make: (d: RunFeatureDefinition) => Promise<RunFeature | undefined> | RunFeature | undefined,
): Promise<readonly RunFeature[]> {
  const made: RunFeature[] = [];
  try {
    for (const d of runFeatures) {
      const f = await make(d);
      if (f) made.push(f);
    }
  } catch (err) {
    disposeFeatures(made);
    throw err;
  }
  return Object.freeze(made);
}

/** Frees what every feature holds, in reverse order. */
export function disposeFeatures(features: readonly RunFeature[]): void {
  for (const f of [...features].reverse()) f.dispose?.();
}

/** The words of the first registered feature that says `run` is part of another run (resume or join that one). */
export function partOfAnother(run: Parameters<NonNullable<RunFeatureDefinition['partOf']>>[0], command: 'resume' | 'work' | 'publish'): string | undefined {
  for (const d of runFeatures) {
    const words = d.partOf?.(run, command);
    if (words !== undefined) return words;
  }
  return undefined;
}

/** The features' log fields and words, merged in order (the "run started" and "joined run" lines). */
export function describeFeatures(features: readonly RunFeature[]): { fields: Record<string, unknown>; words: string } {
  const parts = features.map((f) => f.describe?.() ?? {});
  const fields: Record<string, unknown> = Object.assign({}, ...parts.map((p) => p.fields ?? {})) as Record<string, unknown>;
  return { fields, words: parts.map((p) => p.words ?? '').join('') };
}
