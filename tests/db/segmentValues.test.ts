import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sourceSegmentValues } from '../../src/features/segments/segmentStore.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * The segment columns' values at run start, all columns in one scan of the source: per column, most rows
 * first (ties by value), NULL apart, at most `limit` with `more` saying there were others.
 */
describe('sourceSegmentValues', () => {
  let t: TestDatabase;

  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
    // region: north 4, south 3, east 2, west 2, NULL 1; tier (an integer, read as text): 1 ×6, 2 ×4, NULL 2.
    await t.pool.query(`CREATE TABLE src (id int8, region text, tier int)`);
    await t.pool.query(`INSERT INTO src (id, region, tier) SELECT g, r, k FROM unnest(
        ARRAY['north','north','north','north','south','south','south','east','east','west','west',NULL],
        ARRAY[1, 2, 1, 2, 1, 2, 1, 2, 1, 1, NULL, NULL]) WITH ORDINALITY AS u(r, k, g)`);
  });
  afterAll(async () => t.drop());

  it('finds every column in one scan: most rows first, ties by value, no NULL', async () => {
    const c = await t.pool.connect();
    try {
      expect(await sourceSegmentValues(c, { table: 'src' }, ['region', 'tier'], 500)).toEqual([
        { values: ['north', 'south', 'east', 'west'], more: false },
        { values: ['1', '2'], more: false },
      ]);
      expect(await sourceSegmentValues(c, { table: 'src' }, ['tier'], 500)).toEqual([{ values: ['1', '2'], more: false }]);
    } finally {
      c.release();
    }
  });

  it('beyond the limit: the most frequent values, and more says there were others (per column)', async () => {
    const c = await t.pool.connect();
    try {
      expect(await sourceSegmentValues(c, { table: 'src' }, ['region', 'tier'], 2)).toEqual([
        { values: ['north', 'south'], more: true },
        { values: ['1', '2'], more: false },
      ]);
      expect(await sourceSegmentValues(c, { table: 'src' }, ['region', 'region'], 3)).toEqual([
        { values: ['north', 'south', 'east'], more: true },
        { values: ['north', 'south', 'east'], more: true },
      ]);
    } finally {
      c.release();
    }
  });
});
