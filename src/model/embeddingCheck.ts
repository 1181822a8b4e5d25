import { UsageError } from '../errors.js';
import type { FeaturePlan, PlannedFeature } from './features.js';
import type { EmbeddingUse, InputSlot } from './tensorTypes.js';
import { nullId, unknownId } from './manifest.js';

/**
 * Checks that every id the manifest can feed an Embedding is one of its rows. TF.js does not check ids
 * at prediction: the cpu backend fails the chunk (`GatherV2: the index value 4 is not in [0, 3]`),
 * which would fail a run hours in for a manifest that start-up can judge.
 */
export function checkEmbeddings(plan: FeaturePlan, slots: readonly InputSlot[], uses: readonly EmbeddingUse[], manifestFile: string): void {
  for (const use of uses) {
    const slot = slots[use.input];
    if (slot === undefined) continue;
    const positions = new Set(slot.columns);
    plan.features.forEach((p, f) => {
      if (!positions.has(p.offset)) return;
      const ids = idsOf(p);
      if (ids.max < use.inputDim) return;
      const column = `features[${f}] (${p.feature.column}, ${p.feature.transform})`;
      throw new UsageError(
        `${manifestFile}: ${column} produces ids 0 to ${ids.max} (${ids.parts}) but feeds the Embedding layer "${use.layer}" (input "${slot.name}") with input_dim ${use.inputDim}, ids 0 to ${use.inputDim - 1}: ` +
          `list only the categories the model was trained with, or re-export the model with input_dim ${ids.max + 1} or more`,
      );
    });
  }
}

/** The largest id a feature feeds its int32 input, and where its ids come from. */
function idsOf(p: PlannedFeature): { max: number; parts: string } {
  const f = p.feature;
  if (f.transform !== 'index') return { max: 1, parts: f.transform === 'boolean' ? 'false 0, true 1' : 'one_hot 0 or 1' };
  const n = f.categories.length;
  const unknown = unknownId(f);
  const fill = nullId(f);
  const parts = [n === 1 ? 'category 0' : `categories 0-${n - 1}`];
  if (unknown >= n) parts.push(`unknown ${unknown}`);
  if (fill !== undefined && fill >= n && fill !== unknown) parts.push(`NULL ${fill}`);
  return { max: Math.max(n - 1, unknown, fill ?? 0), parts: parts.join(', ') };
}
