import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

/** The config TF.js hands over (its camelCase of Keras's `get_config()`). */
interface NormalizationArgs {
  name?: string;
  trainable?: boolean;
  dtype?: tf.DataType;
  /** An axis, a list of them (Keras 3 writes its tuple as a list), or null (one mean for everything). */
  axis?: number | number[] | null;
  /** Given at construction in Keras; null (as Keras writes it) when `adapt()` stored them as weights. */
  mean?: number | number[] | null;
  variance?: number | number[] | null;
  invert?: boolean;
}

/** Keras's `backend.epsilon()`: the smallest standard deviation the layer divides by. */
const epsilon = 1e-7;

/**
 * Keras's `Normalization` preprocessing layer, which TF.js has no class for: `(x - mean) /
 * max(sqrt(variance), 1e-7)` (or its inverse), with mean and variance per kept axis, from the config or,
 * after `adapt()`, from the weights `mean`, `variance` and `count` (count is unused, as in Keras).
 */
export class KerasNormalization extends tfl.layers.Layer {
  static className = 'Normalization';
  private readonly axis: number[];
  private readonly invert: boolean;
  private readonly given: { mean: number | number[]; variance: number | number[] } | undefined;
  private mean: tfl.LayerVariable | tf.Tensor | undefined;
  private variance: tfl.LayerVariable | tf.Tensor | undefined;
  private broadcastShape: number[] = [];

  constructor(args: NormalizationArgs) {
    super(args);
    this.axis = args.axis === null ? [] : Array.isArray(args.axis) ? args.axis : [args.axis ?? -1];
    this.invert = args.invert === true;
    const { mean, variance } = args;
    this.given = mean !== null && mean !== undefined && variance !== null && variance !== undefined ? { mean, variance } : undefined;
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) || inputShape[0] === undefined ? inputShape[0] : inputShape) as tfl.Shape;
    const ndim = shape.length;
    const keep = this.axis.map((a) => (a < 0 ? a + ndim : a)).sort((a, b) => a - b);
    this.broadcastShape = shape.map((d, i) => (keep.includes(i) ? (d ?? 1) : 1));
    const kept = keep.map((i) => shape[i] ?? 1);
    if (this.given === undefined) {
      const zeros = tfl.initializers.zeros();
      this.mean = this.addWeight('mean', kept, 'float32', zeros, undefined, false);
      this.variance = this.addWeight('variance', kept, 'float32', tfl.initializers.ones(), undefined, false);
      this.addWeight('count', [], 'int32', zeros, undefined, false);
    } else {
      // Kept past any tidy the build runs in; freed in dispose().
      const constant = (v: number | number[]) =>
        tf.tidy(() =>
          tf.keep(tf.broadcastTo(tf.reshape(tf.tensor(v, undefined, 'float32'), Array.isArray(v) ? this.broadcastShape : []), this.broadcastShape)),
        );
      this.mean = constant(this.given.mean);
      this.variance = constant(this.given.variance);
    }
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = tf.cast(Array.isArray(inputs) ? inputs[0]! : inputs, 'float32');
      const mean = tf.reshape(this.read(this.mean), this.broadcastShape);
      const std = tf.maximum(tf.sqrt(tf.reshape(this.read(this.variance), this.broadcastShape)), epsilon);
      return this.invert ? tf.add(mean, tf.mul(x, std)) : tf.div(tf.sub(x, mean), std);
    });
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    const given = this.given === undefined ? { mean: null, variance: null } : this.given;
    return { ...super.getConfig(), axis: this.axis, invert: this.invert, ...given };
  }

  override dispose(): ReturnType<tfl.layers.Layer['dispose']> {
    const result = super.dispose();
    if (result.refCountAfterDispose === 0 && this.given !== undefined) for (const t of [this.mean, this.variance]) (t as tf.Tensor | undefined)?.dispose();
    return result;
  }

  private read(v: tfl.LayerVariable | tf.Tensor | undefined): tf.Tensor {
    if (v === undefined) throw new Error(`Normalization layer ${this.name} used before it was built`);
    return v instanceof tf.Tensor ? v : v.read();
  }
}

tf.serialization.registerClass(KerasNormalization);
