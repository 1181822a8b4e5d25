import * as tf from '@tensorflow/tfjs-core';
import type { GraphModel } from '@tensorflow/tfjs-converter';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import type { EmbeddingUse, ModelTensorInfo } from './tensorTypes.js';
import { fromKeras3 } from './keras3.js';
import { fromKeras3Weights } from './keras3Weights.js';
// Registers Keras's Normalization layer with TF.js's deserializer.
import './kerasNormalization.js';

/**
 * A loaded TF.js model of either format, behind one interface: inputs and outputs by name, one way to
 * run. Layers models come from `model.save()` or the Keras converter; graph models from
 * `tensorflowjs_converter` on a SavedModel (a GraphDef with a signature).
 */
export interface TfModel {
  format: 'layers-model' | 'graph-model';
  /** In the order `run` takes them. */
  inputs: readonly ModelTensorInfo[];
  /** Signature output keys (graph) or output layer names (layers), in model order. */
  outputNames: readonly string[];
  /**
   * Runs the model on one tensor per input (in `inputs` order) and returns the outputs asked for (indexes
   * into `outputNames`), in that order. The caller disposes the inputs and the outputs.
   */
  run(inputs: tf.Tensor[], outputs: readonly number[]): Promise<tf.Tensor[]>;
  /** For a graph model: whether `run` uses `executeAsync` (the graph has control flow or dynamic ops). */
  readonly async: boolean;
  /** A graph model only: from now on run with `executeAsync`. */
  useAsync(): void;
  /**
   * A layers model only: the model as a differentiable function of its inputs (for `tf.grads`, used by
   * `--reasons`), outputs in `outputNames` order. Undefined where gradients cannot be taken (a graph model).
   */
  readonly differentiable?: ((inputs: tf.Tensor[]) => tf.Tensor[]) | undefined;
  /** A layers model only: its Embedding layers fed straight from an input (a graph's gathers are not traced). */
  readonly embeddings?: readonly EmbeddingUse[] | undefined;
  /** A layers model only: the activation of the layer that produces output `o` ('sigmoid', 'linear', ...). */
  outputActivation?(o: number): string | undefined;
  dispose(): void;
}

/**
 * Loads the model from memory (no file or network URLs): the artifacts were read and checked by
 * modelFiles.ts. A layers model's config is read through {@link fromKeras3}, so Keras 3 exports load too.
 */
export async function loadTfModel(artifacts: tf.io.ModelArtifacts): Promise<TfModel> {
  // Loaded only for a graph model: ~30 ms of start-up that a layers model does not need.
  if (isGraphModel(artifacts)) return wrapGraph(await (await import('@tensorflow/tfjs-converter')).loadGraphModel(tf.io.fromMemory(artifacts)));
  const topology = fromKeras3(artifacts.modelTopology) as tf.io.ModelArtifacts['modelTopology'];
  const keras2 = tf.io.fromMemory({ ...artifacts, modelTopology: topology, ...fromKeras3Weights(artifacts, topology) });
  return wrapLayers(await loadLayersModel(keras2, { strict: true }));
}

/** `format` says so for converter output; an unlabelled GraphDef is recognized by its `node` list. */
export function isGraphModel(artifacts: Pick<tf.io.ModelArtifacts, 'format' | 'modelTopology'>): boolean {
  if (artifacts.format === 'graph-model') return true;
  if (artifacts.format === 'layers-model') return false;
  const topology = artifacts.modelTopology as Record<string, unknown> | undefined;
  return topology !== undefined && Array.isArray(topology.node);
}

function wrapLayers(model: LayersModel): TfModel {
  return {
    format: 'layers-model',
    // A Sequential model may leave inputNames empty too: its input layer names the input.
    inputs: model.inputs.map((t, i) => ({ name: model.inputNames[i] ?? t.sourceLayer.name, dtype: t.dtype, shape: [...t.shape] })),
    // A Sequential model leaves outputNames empty: its output layer names the output.
    outputNames: model.outputs.map((t, i) => model.outputNames[i] ?? t.sourceLayer.name),
    async: false,
    useAsync() {},
    async run(inputs, outputs) {
      // batchSize = rows: one pass through the layers; the default (32) is ~36x slower.
      const result = model.predict(inputs.length === 1 ? inputs[0]! : inputs, { batchSize: inputs[0]!.shape[0] });
      const all = Array.isArray(result) ? result : [result];
      const wanted = outputs.map((o) => all[o]!);
      for (const t of all) if (!wanted.includes(t)) t.dispose();
      return wanted;
    },
    differentiable(inputs) {
      const y = model.apply(inputs.length === 1 ? inputs[0]! : inputs, { training: false }) as tf.Tensor | tf.Tensor[];
      return Array.isArray(y) ? y : [y];
    },
    embeddings: embeddingsFedByInputs(model),
    outputActivation(o) {
      const activation = model.outputs[o]?.sourceLayer.getConfig().activation;
      return typeof activation === 'string' ? activation : undefined;
    },
    dispose: () => model.dispose(),
  };
}

/** Layers that pass ids through unchanged in value, between an input and its Embedding. */
const idPreserving = new Set(['Reshape', 'Flatten', 'Permute']);

function embeddingsFedByInputs(model: LayersModel): EmbeddingUse[] {
  const uses: EmbeddingUse[] = [];
  model.inputLayers.forEach((inputLayer, input) => {
    const pending = [inputLayer];
    for (let layer = pending.pop(); layer !== undefined; layer = pending.pop()) {
      for (const node of layer.outboundNodes) {
        const next = node.outboundLayer;
        const kind = next.getClassName();
        if (kind === 'Embedding') uses.push({ input, layer: next.name, inputDim: Number(next.getConfig().inputDim) });
        else if (idPreserving.has(kind)) pending.push(next);
      }
    }
  });
  return uses;
}

function wrapGraph(model: GraphModel): TfModel {
  const names = model.inputNodes;
  const infos = model.inputs;
  const outputNames = model.outputNodes;
  let useExecuteAsync = false;
  return {
    format: 'graph-model',
    inputs: names.map((name, i) => ({ name, dtype: String(infos[i]?.dtype ?? 'float32'), shape: infos[i]?.shape?.map((d) => (d < 0 ? null : d)) })),
    outputNames,
    get async() {
      return useExecuteAsync;
    },
    useAsync() {
      useExecuteAsync = true;
    },
    async run(inputs, outputs) {
      const feed: tf.NamedTensorMap = {};
      names.forEach((name, i) => (feed[name] = inputs[i]!));
      const wanted = outputs.map((o) => outputNames[o]!);
      const result = useExecuteAsync ? await model.executeAsync(feed, wanted) : model.execute(feed, wanted);
      return Array.isArray(result) ? result : [result];
    },
    dispose: () => model.dispose(),
  };
}
