import path from 'node:path';
import { UsageError } from '../errors.js';
import type { FeaturePlan } from './features.js';
import type { InputSlot, ModelTensorInfo } from './tensorTypes.js';

/** Names the files in messages. */
export interface LayoutFiles {
  manifest: string;
  model: string;
}

/**
 * Maps the features to the model's inputs and checks names, dtypes and widths. A model with one input
 * takes every feature (in manifest order) unless the manifest says otherwise; a model with several
 * needs each feature's `input`. Every problem is a one-line {@link UsageError}.
 */
export function layoutInputs(plan: FeaturePlan, inputs: readonly ModelTensorInfo[], files: LayoutFiles): InputSlot[] {
  const names = inputs.map((i) => i.name);
  const list = names.map((n) => `"${n}"`).join(', ');
  const columns: number[][] = inputs.map(() => []);
  plan.features.forEach((p, f) => {
    const at = `features[${f}].input`;
    let target = 0;
    if (p.feature.input !== undefined) {
      target = names.indexOf(p.feature.input);
      if (target < 0) throw new UsageError(`${files.manifest}: ${at} "${p.feature.input}" is not an input of the model (its inputs: ${list})`);
    } else if (inputs.length > 1) {
      throw new UsageError(
        `${files.manifest}: ${at} is missing: the model has ${inputs.length} inputs (${list}); name the one feature ${p.feature.column} feeds`,
      );
    }
    const input = inputs[target]!;
    if (input.dtype === 'int32' && (p.feature.transform === 'standardize' || p.feature.transform === 'raw')) {
      throw new UsageError(
        `${files.manifest}: features[${f}] (${p.feature.column}, ${p.feature.transform}) feeds the int32 input "${input.name}"; only index, one_hot and boolean features give whole numbers`,
      );
    }
    for (let j = 0; j < p.inputs; j++) columns[target]!.push(p.offset + j);
  });
  return inputs.map((input, i) => slot(input, columns[i]!, inputs.length, plan.width, files));
}

function slot(input: ModelTensorInfo, columns: number[], inputCount: number, rowWidth: number, files: LayoutFiles): InputSlot {
  const model = path.basename(files.model);
  const shape = input.shape ?? [null, null];
  const shown = `[${shape.map((d) => (d === null ? 'null' : String(d))).join(', ')}]`;
  if (input.dtype !== 'float32' && input.dtype !== 'int32') {
    throw new UsageError(`${files.model}: input "${input.name}" is ${input.dtype}; scorejob feeds float32 or int32 inputs`);
  }
  if (shape.length !== 1 && shape.length !== 2) {
    throw new UsageError(`${files.model}: the model's input "${input.name}" has shape ${shown}; scorejob feeds [rows, features] or [rows]`);
  }
  if (shape[0] !== null) {
    throw new UsageError(
      `${files.model}: input "${input.name}" has a fixed batch size of ${shape[0]} (shape ${shown}); re-export it with a free batch dimension (None / -1)`,
    );
  }
  if (columns.length === 0) {
    throw new UsageError(`${files.manifest}: no feature feeds the model's input "${input.name}" (set features[].input)`);
  }
  const expected = shape.length === 1 ? 1 : shape[1];
  if (expected !== null && expected !== undefined && expected !== columns.length) {
    if (inputCount === 1) throw new UsageError(`features in manifest.json produce ${columns.length} inputs but ${model} expects ${expected} (${files.model})`);
    throw new UsageError(`features in manifest.json give input "${input.name}" ${columns.length} values but ${model} expects ${expected} (${files.model})`);
  }
  const whole = input.dtype === 'float32' && columns.length === rowWidth && columns.every((c, j) => c === j);
  return { name: input.name, dtype: input.dtype, width: columns.length, rank: shape.length === 1 ? 1 : 2, columns: Int32Array.from(columns), whole };
}
