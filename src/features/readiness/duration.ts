import { UsageError } from '../../errors.js';

const unitMs: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `--ready-deadline`: a duration such as `90m`, `6h`, `2d`, `1h30m` (a bare number is seconds), as ms.
 * `name` is the flag or variable the value came from.
 */
export function parseDuration(value: string, name: string): number {
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const parts = [...text.matchAll(/(\d+)([smhd])/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) {
    throw new UsageError(`${name}: "${value}" is not a duration; write it like 90m, 6h, 2d or 1h30m`);
  }
  const ms = parts.reduce((sum, p) => sum + Number(p[1]) * (unitMs[p[2] ?? 's'] ?? 1000), 0);
  if (ms <= 0 || ms > 90 * unitMs.d!) throw new UsageError(`${name}: "${value}" must be more than 0 and at most 90d`);
  return ms;
}
