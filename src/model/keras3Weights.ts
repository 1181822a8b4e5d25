import * as tf from '@tensorflow/tfjs-core';

/**
 * Weights of a `.keras` file converted with `tensorflowjs_converter --input_format=keras_keras`: the
 * converter names them by their path in the file's weights store, `layers/<layer>/vars/<i>` (the i-th
 * variable the layer made), and keeps the optimizer's and metrics' variables (`optimizer/vars/<i>`).
 * TF.js matches weights by `<layer>/<name>` and, loading strictly, refuses a weight no layer has. So
 * each layer variable gets the name TF.js gives it, by the layer's class, and the rest (only training
 * uses them) are left out, in memory: the files stay as they are.
 */

type Spec = tf.io.WeightsManifestEntry;

/** Bytes per value in a weight shard, by dtype (tfjs-core's DTYPE_VALUE_SIZE_MAP, which it does not export). */
const sizes: Record<string, number> = { float32: 4, float16: 2, int32: 4, uint16: 2, uint8: 1, bool: 1, complex64: 8 };

/** `layers/<layer>/vars/<i>`, under any prefix (a nested model's `layers/inner/layers/dense/vars/0`). */
const layerVariable = /(?:^|\/)layers\/(?:[^/]+\/layers\/)*([^/]+)\/vars\/(\d+)$/;
const storePath = /(?:^|\/)vars\/\d+$/;

/** The variables a layer class makes, in the order Keras and TF.js both create them (for its config). */
function variableNames(className: string, config: Record<string, unknown>): string[] | undefined {
  const useBias = config.use_bias !== false;
  switch (className) {
    case 'Dense':
    case 'Conv1D':
    case 'Conv2D':
      return useBias ? ['kernel', 'bias'] : ['kernel'];
    case 'Embedding':
      return ['embeddings'];
    case 'BatchNormalization':
      return [...(config.scale === false ? [] : ['gamma']), ...(config.center === false ? [] : ['beta']), 'moving_mean', 'moving_variance'];
    case 'LayerNormalization':
      return [...(config.scale === false ? [] : ['gamma']), ...(config.center === false ? [] : ['beta'])];
    case 'Normalization':
      return ['mean', 'variance', 'count'];
    default:
      return undefined;
  }
}

/** Every layer of a (Keras 2 shaped) topology by name, nested models included. */
function layersByName(topology: unknown): Map<string, { className: string; config: Record<string, unknown> }> {
  const out = new Map<string, { className: string; config: Record<string, unknown> }>();
  const walk = (model: unknown): void => {
    const config = (model as { config?: { layers?: unknown } } | undefined)?.config;
    if (!Array.isArray(config?.layers)) return;
    for (const layer of config.layers as { class_name?: string; name?: string; config?: Record<string, unknown> }[]) {
      const name = layer.name ?? (layer.config?.name as string | undefined);
      if (name !== undefined && typeof layer.class_name === 'string') out.set(name, { className: layer.class_name, config: layer.config ?? {} });
      walk(layer);
    }
  };
  const t = topology as { model_config?: unknown } | undefined;
  walk(t?.model_config ?? t);
  return out;
}

/** `model/dense/kernel` -> `dense/kernel`. */
const lastTwo = (name: string): string => name.split('/').slice(-2).join('/');

/**
 * The artifacts' weights named as TF.js names them, without training-only variables; unchanged for
 * weights TF.js already matches. Besides the store paths, Keras 3's `.h5` route names the variables of a
 * Sequential model's layers under the model's name (`sequential/dense/kernel`): TF.js knows them as `dense/kernel`.
 */
export function fromKeras3Weights(artifacts: tf.io.ModelArtifacts, topology: unknown): Pick<tf.io.ModelArtifacts, 'weightSpecs' | 'weightData'> {
  const specs = artifacts.weightSpecs ?? [];
  const layers = layersByName(topology);
  const expected = new Set([...layers].flatMap(([name, l]) => (variableNames(l.className, l.config) ?? []).map((v) => `${name}/${v}`)));
  const prefixed = (name: string) => !expected.has(name) && expected.has(lastTwo(name));
  if (artifacts.weightData === undefined || !specs.some((s) => storePath.test(s.name) || prefixed(s.name)))
    return { weightSpecs: artifacts.weightSpecs, weightData: artifacts.weightData };
  const data = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData));
  const kept: Spec[] = [];
  const pieces: Uint8Array[] = [];
  let offset = 0;
  for (const spec of specs) {
    const bytes = byteLength(spec);
    const match = layerVariable.exec(spec.name);
    if (match !== null || !storePath.test(spec.name)) {
      const name = match !== null ? tfjsName(match[1]!, Number(match[2]), layers, spec.name) : prefixed(spec.name) ? lastTwo(spec.name) : spec.name;
      kept.push(name === spec.name ? spec : { ...spec, name });
      pieces.push(data.subarray(offset, offset + bytes));
    }
    offset += bytes;
  }
  // Only renamed: the shards as they are, no copy.
  if (kept.length === specs.length) return { weightSpecs: kept, weightData: artifacts.weightData };
  const joined = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of pieces) {
    joined.set(p, at);
    at += p.length;
  }
  return { weightSpecs: kept, weightData: joined.buffer };
}

/** `<layer>/<variable>`; the store's name when the layer's class is not one whose variables are known (a strict load then names it). */
function tfjsName(layer: string, index: number, layers: ReturnType<typeof layersByName>, storeName: string): string {
  const info = layers.get(layer);
  const names = info === undefined ? undefined : variableNames(info.className, info.config);
  const name = names?.[index];
  return name === undefined ? storeName : `${layer}/${name}`;
}

function byteLength(spec: Spec): number {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const dtype = spec.quantization?.dtype ?? spec.dtype;
  const size = sizes[dtype];
  if (size === undefined) throw new Error(`weight ${spec.name} has dtype ${dtype}, which a Keras model's weights never have`);
  return n * size;
}
