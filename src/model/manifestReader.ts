import { UsageError } from '../errors.js';

/** A whole-number index id must be below this (exact in float32). */
export const maxIndexId = 2 ** 24;

/** Type checks that throw a UsageError naming `file` and the field path. */
export class ManifestReader {
  constructor(private readonly file: string) {}

  fail(path: string, what: string): never {
    throw new UsageError(`${this.file}: ${path === '' ? '' : `${path} `}${what}`);
  }

  object(value: unknown, path: string): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.fail(path, `${path === '' ? 'must hold' : 'must be'} a JSON object (got ${describe(value)})`);
    }
    return value as Record<string, unknown>;
  }

  /** Unknown keys are errors: a misspelt `fill` would otherwise silently reject rows. */
  only(o: Record<string, unknown>, path: string, allowed: readonly string[]): void {
    for (const key of Object.keys(o)) {
      if (!allowed.includes(key)) this.fail(path === '' ? key : `${path}.${key}`, `is not a known field (expected ${allowed.join(', ')})`);
    }
  }

  string(value: unknown, path: string): string {
    if (typeof value !== 'string') this.fail(path, `must be a string (got ${describe(value)})`);
    return value;
  }

  name(value: unknown, path: string): string {
    const s = this.string(value, path);
    if (s.trim() === '') this.fail(path, 'must not be empty');
    return s;
  }

  /** A PostgreSQL identifier: any characters (it is always quoted), at most 63 bytes, no NUL. */
  identifier(value: unknown, path: string): string {
    const s = this.string(value, path);
    if (s === '') this.fail(path, 'must not be empty');
    if (s.includes('\0')) this.fail(path, 'must not contain a NUL character');
    if (Buffer.byteLength(s) > 63) this.fail(path, `"${s}" is longer than PostgreSQL's 63-byte names`);
    return s;
  }

  finite(value: unknown, path: string): number {
    if (typeof value !== 'number' || !Number.isFinite(value)) this.fail(path, `must be a number (got ${describe(value)})`);
    return value;
  }

  /** A whole-number index id, exact in float32. */
  id(value: unknown, path: string): number {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= maxIndexId) {
      this.fail(path, `must be a whole number from 0 to ${maxIndexId - 1} (got ${describe(value)})`);
    }
    return value;
  }

  positive(value: unknown, path: string): number {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) this.fail(path, `must be a positive number (got ${describe(value)})`);
    return value;
  }
}

export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'an object';
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- objects returned above: numbers, booleans, bigints and symbols are left
  return String(value);
}
