import { KeyBytes, type KeyType } from './keyColumn.js';

/**
 * One chunk of source rows, decoded column by column into typed arrays: the hand-off between the
 * COPY reader (db/) and the feature transforms (model/). Neither side allocates per row.
 *
 * Arrays are sized for `capacity` rows and reused chunk after chunk; only the first `rows` entries are valid.
 */
export interface ColumnBatch {
  rows: number;
  capacity: number;
  /** The source key of each row (int8 keys), or its position in `keyBytes` (uuid and text keys: src/keyColumn.ts). */
  keys: BigInt64Array;
  /** uuid and text keys: their field bytes, verbatim; undefined for int8 keys. */
  keyBytes?: KeyBytes | undefined;
  /** One entry per feature source column, in manifest order. */
  columns: RawColumn[];
}

/** How a source column arrives: the SQL cast the reader applies decides it (see {@link columnKindOf}). */
export type RawColumnKind = 'float8' | 'bool' | 'category';

export interface RawColumnBase {
  /** Source column name (for reject reasons and statistics). */
  name: string;
  /** nulls[i] === 1 when row i is NULL in this column. */
  nulls: Uint8Array;
}

/** A numeric column read as float8 (NaN and ±Infinity arrive as such). */
export interface Float8Column extends RawColumnBase {
  kind: 'float8';
  values: Float64Array;
}

/** A boolean column: values[i] is 0 or 1. */
export interface BoolColumn extends RawColumnBase {
  kind: 'bool';
  values: Uint8Array;
}

/**
 * A categorical column read as text and matched against the manifest's categories while decoding:
 * codes[i] is the index of the category, or -1 for a value not in the list (an unknown category).
 */
export interface CategoryColumn extends RawColumnBase {
  kind: 'category';
  codes: Int32Array;
  /** The manifest's categories, in order (the reader compares UTF-8 bytes, no string per row). */
  categories: readonly string[];
}

export type RawColumn = Float8Column | BoolColumn | CategoryColumn;

/** The columns a batch needs, as the model's manifest describes them. */
export interface ColumnSpec {
  name: string;
  kind: RawColumnKind;
  /** For `category`: the categories, in one-hot order. */
  categories?: readonly string[];
}

/** Allocates a batch for `capacity` rows of the given columns, keyed by `keyType`. */
export function allocateBatch(specs: readonly ColumnSpec[], capacity: number, keyType: KeyType = 'int8'): ColumnBatch {
  return {
    rows: 0,
    capacity,
    keys: new BigInt64Array(capacity),
    keyBytes: keyType === 'int8' ? undefined : new KeyBytes(keyType, capacity),
    columns: specs.map((s): RawColumn => {
      const nulls = new Uint8Array(capacity);
      switch (s.kind) {
        case 'float8':
          return { kind: 'float8', name: s.name, nulls, values: new Float64Array(capacity) };
        case 'bool':
          return { kind: 'bool', name: s.name, nulls, values: new Uint8Array(capacity) };
        case 'category':
          return { kind: 'category', name: s.name, nulls, codes: new Int32Array(capacity), categories: s.categories ?? [] };
      }
    }),
  };
}
