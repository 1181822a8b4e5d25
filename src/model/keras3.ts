/**
 * Keras 3 model configs, rewritten in memory into the Keras 2 shapes that TF.js 4.22's deserializer
 * reads. `tensorflowjs_converter` copies Keras 3's `get_config()` into model.json as it is, and TF.js
 * refuses it ("An InputLayer should be passed either a batchInputShape or an inputShape"). What differs:
 *
 * - `InputLayer` has `batch_shape` where Keras 2 had `batch_input_shape`;
 * - a layer's `dtype` is a `DTypePolicy` object (`{"class_name": "DTypePolicy", "config": {"name": "float32"}}`);
 * - `inbound_nodes` are call records, `{"args": [...], "kwargs": {...}}`, whose tensors are
 *   `{"class_name": "__keras_tensor__", "config": {"keras_history": [layer, node, tensor]}}`, where Keras 2
 *   had nested lists `[[[layer, node, tensor, kwargs], ...]]`;
 * - nested objects (initializers, regularizers, constraints, layers) carry `module`, `registered_name`
 *   and `build_config` keys, and some classes are renamed (`LecunNormal`);
 * - `input_layers` / `output_layers` of a single input may be one `[layer, node, tensor]`, and a model
 *   built on a dict of inputs has a dict there.
 *
 * On a Keras 2 config the rewrite only drops regularizers (tf.keras 2's `L2` is no TF.js class either),
 * so every layers model goes through it. The user's files are never touched: the sha256 recorded on runs
 * is of the files as they are.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Keras 3 class names TF.js knows under another name. */
const renamedClasses: Record<string, string> = {
  LecunNormal: 'LeCunNormal',
  LecunUniform: 'LeCunUniform',
  OrthogonalInitializer: 'Orthogonal',
  IdentityInitializer: 'Identity',
};

const modelClasses = new Set(['Functional', 'Model', 'Sequential']);

/** A copy of a layers model's `modelTopology` in the Keras 2 shapes (the argument is not changed). */
export function fromKeras3(topology: unknown): unknown {
  if (!isObject(topology)) return topology;
  const copy = structuredClone(topology);
  const model = isObject(copy.model_config) ? copy.model_config : copy;
  normalizeModel(model);
  return copy;
}

function normalizeModel(model: JsonObject): void {
  stripSerialization(model);
  const config = model.config;
  if (!isObject(config)) return;
  if (Array.isArray(config.layers)) for (const layer of config.layers) if (isObject(layer)) normalizeLayer(layer);
  for (const key of ['input_layers', 'output_layers']) if (key in config) config[key] = tensorList(config[key]!);
}

function normalizeLayer(layer: JsonObject): void {
  if (typeof layer.class_name === 'string' && modelClasses.has(layer.class_name)) {
    normalizeModel(layer);
  } else {
    stripSerialization(layer);
    if (isObject(layer.config)) normalizeLayerConfig(layer.class_name, layer.config);
  }
  if (Array.isArray(layer.inbound_nodes)) layer.inbound_nodes = layer.inbound_nodes.map(inboundNode);
}

function normalizeLayerConfig(className: Json | undefined, config: JsonObject): void {
  if (className === 'InputLayer' && config.batch_shape !== undefined && config.batch_input_shape === undefined) {
    config.batch_input_shape = config.batch_shape;
    delete config.batch_shape;
  }
  if (config.dtype !== undefined) config.dtype = dtypeName(config.dtype);
  for (const [key, value] of Object.entries(config)) {
    // Regularizers only add to a training loss; Keras's L1/L2 classes have no TF.js counterpart.
    if (key.endsWith('_regularizer')) config[key] = null;
    else if (isObject(value) && typeof value.class_name === 'string') config[key] = serializedObject(value);
  }
}

/**
 * A dtype policy's compute dtype. `mixed_float16` / `mixed_bfloat16` keep float32 weights; TF.js
 * computes in float32, as the weights are stored.
 */
function dtypeName(dtype: Json): Json {
  if (!isObject(dtype) || !isObject(dtype.config)) return dtype;
  const name = dtype.config.name;
  if (typeof name !== 'string') return dtype;
  return name.startsWith('mixed_') ? 'float32' : name;
}

/** An initializer or constraint without Keras 3's extra keys, under TF.js's class name. */
function serializedObject(value: JsonObject): JsonObject {
  const className = value.class_name as string;
  const out: JsonObject = { class_name: renamedClasses[className] ?? className, config: isObject(value.config) ? value.config : {} };
  return out;
}

/** Keras 3 writes these beside `class_name` and `config`; TF.js reads neither. */
function stripSerialization(o: JsonObject): void {
  delete o.module;
  delete o.registered_name;
  delete o.build_config;
  delete o.compile_config;
}

/** `[layer, node, tensor]`, a list of them, or a dict of them -> a list of them. */
function tensorList(value: Json): Json {
  if (Array.isArray(value) && typeof value[0] === 'string') return [value];
  if (isObject(value)) return Object.values(value).map((v) => (Array.isArray(v) && Array.isArray(v[0]) ? v[0] : v));
  return value;
}

/**
 * One inbound node. Keras 2: already a list of `[layer, node, tensor, kwargs]`. Keras 3: a call record
 * whose positional arguments hold the input tensors (one, or a list of them for a merge layer). The
 * call's kwargs are left out: in a saved inference graph they are flags (`training`, `mask: null`).
 */
function inboundNode(node: Json): Json {
  if (!isObject(node) || !('args' in node)) return node;
  const tensors: Json[] = [];
  collectTensors(node.args ?? [], tensors);
  return tensors;
}

function collectTensors(value: Json, into: Json[]): void {
  if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, into);
  } else if (isObject(value)) {
    if (value.class_name === '__keras_tensor__' && isObject(value.config) && Array.isArray(value.config.keras_history)) {
      const [layer, node, tensor] = value.config.keras_history;
      into.push([layer!, node!, tensor!, {}]);
    } else if (value.class_name === '__tuple__' && isObject(value.config)) {
      collectTensors(value.config.value ?? [], into);
    }
  }
}
