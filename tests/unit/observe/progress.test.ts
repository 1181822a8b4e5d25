import { describe, expect, it } from 'vitest';
import { formatProgressLine, formatProgressMessage, RunProgress, startProgress } from '../../../src/observe/progress.js';
import { formatClock } from '../../../src/format.js';
import { createLogger } from '../../../src/log.js';

describe('run progress', () => {
  it('counts customers and chunks and turns them into rate and ETA', () => {
    const p = new RunProgress(10_000, 10, { customers: 0, chunks: 0 }, 0);
    p.chunkDone(1000);
    p.chunkDone(1000);
    const s = p.snapshot(2000); // 2,000 rows in 2 s
    expect(s).toEqual({
      customers_done: 2000,
      customers_total: 10_000,
      chunks_done: 2,
      chunks_total: 10,
      elapsed_s: 2,
      rows_per_second: 1000,
      eta_s: 8,
      waiting_s: null,
    });
  });

  it('a resume counts only its own rows in the rate', () => {
    const p = new RunProgress(10_000, 10, { customers: 6000, chunks: 6 }, 0);
    expect(p.snapshot(1000).eta_s).toBeNull();
    p.chunkDone(1000);
    expect(p.snapshot(1000)).toMatchObject({ customers_done: 7000, rows_per_second: 1000, eta_s: 3 });
  });

  it('formats a line that never wraps, with bar, figures, elapsed and ETA', () => {
    const s = {
      customers_done: 420_000,
      customers_total: 1_000_000,
      chunks_done: 9,
      chunks_total: 20,
      elapsed_s: 5,
      rows_per_second: 84_000,
      eta_s: 7,
      waiting_s: null,
    };
    const line = formatProgressLine(s, 200);
    expect(line).toContain('42.0%');
    expect(line).toContain('420,000/1,000,000 customers');
    expect(line).toContain('84,000 rows/s');
    expect(line).toContain('chunks 9/20');
    expect(line).toContain('elapsed 0:05');
    expect(line).toContain('ETA 0:07');
    expect(line).toMatch(/█{8}░{12}/);
    expect(formatProgressLine(s, 40).length).toBe(39);
    expect(formatProgressMessage(s)).toBe('progress: 420,000 of 1,000,000 customers (42.0%), 9 of 20 chunks, 84,000 rows/s, elapsed 0:05, ETA 0:07');
    expect(formatClock(3725)).toBe('1:02:05');
  });

  it('while the database is unreachable: "waiting for the database (12 s)" instead of an ETA from the stalled rate', () => {
    const p = new RunProgress(10_000, 10, { customers: 0, chunks: 0 }, 0);
    p.chunkDone(1000);
    p.waitingSince = 50_000;
    const s = p.snapshot(20_000, 62_400);
    expect(s).toMatchObject({ eta_s: null, waiting_s: 12 });
    expect(formatProgressLine(s, 200)).toMatch(/elapsed 0:20 {2}waiting for the database \(12 s\)$/);
    expect(formatProgressMessage(s)).toBe(
      'progress: 1,000 of 10,000 customers (10.0%), 1 of 10 chunks, 50 rows/s, elapsed 0:20, waiting for the database (12 s)',
    );
    p.waitingSince = undefined;
    expect(p.snapshot(20_000)).toMatchObject({ eta_s: 180, waiting_s: null });
  });

  it('draws on a terminal and clears the line at the end', () => {
    const written: string[] = [];
    const p = new RunProgress(100, 2, { customers: 0, chunks: 0 });
    const r = startProgress(
      p,
      { tty: { write: (s: string) => written.push(s), columns: 120 }, intervalMs: 30_000 },
      createLogger({ level: 'silent', pretty: false }),
    );
    p.chunkDone(50);
    r.stop();
    r.stop();
    expect(written[0]).toMatch(/^\r\x1b\[2Kscoring /);
    expect(written.at(-1)).toBe('\r\x1b[2K');
    expect(written.filter((w) => w === '\r\x1b[2K')).toHaveLength(1);
  });
});
