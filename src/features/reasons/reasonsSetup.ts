import path from 'node:path';
import { createExplainer, type Explainer } from '../../model/explainer.js';
import type { LoadedModel } from '../../model/load.js';

/**
 * The run's explainer for `--reasons K` (undefined without it), made before anything is written: a model
 * TF.js cannot differentiate is refused here (exit 2), and the loaded model is freed with the refusal.
 */
export function explainerFor(model: LoadedModel, k: number | undefined): Explainer | undefined {
  if (k === undefined || k === 0) return undefined;
  try {
    return createExplainer(model.tfModel, model.plan, model.inputs, model.output, k, path.join(model.dir, 'model.json'));
  } catch (err) {
    model.dispose();
    throw err;
  }
}
