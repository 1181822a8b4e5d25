/*
 * The shapes that loading, layout, the embedding check and scoring pass between them: here so that none
 * of those modules imports another only for a type.
 */

/** A model input or output as scorejob sees it: its name, dtype and shape (null for a free dimension). */
export interface ModelTensorInfo {
  name: string;
  dtype: string;
  /** undefined when the model does not say (a graph's output nodes carry no shape). */
  shape: (number | null)[] | undefined;
}

/**
 * One model input, fed from the columns of the features' row-major input row that belong to it. The
 * chunk loop produces one float32 row per source row (inputWidth values); the scorer splits each row
 * into the model's named inputs with these.
 */
export interface InputSlot {
  name: string;
  dtype: 'float32' | 'int32';
  /** Values per row of this input. */
  width: number;
  /** 1: a `[rows]` input (width 1); 2: `[rows, width]`. */
  rank: 1 | 2;
  /** Positions in the full input row of this input's values, in order. */
  columns: Int32Array;
  /** The input is the whole row as is (one float32 input): the scorer feeds a view, no copy. */
  whole: boolean;
}

/** An `Embedding` layer fed straight from a model input (through at most a Reshape or Flatten). */
export interface EmbeddingUse {
  /** Index into the model's inputs. */
  input: number;
  layer: string;
  /** The layer's rows: it takes ids 0 to inputDim - 1. */
  inputDim: number;
}
