import type { ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seedCustomers } from '../../src/dev/seed.js';
import { startCli, waitForLog, type CliResult } from '../helpers/cli.js';
import { runCliInProcess } from '../helpers/inProcessCli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { holdAtChunk, holdAtRunStart, holdAtSnapshot, type ChunkHold } from '../helpers/hold.js';
import { modelCopy, runInProcess } from '../helpers/run.js';
import { publishedSnapshot } from '../helpers/state.js';

/**
 * README "What a run reads": the source changing under a run. Each run is held at a known point (inside the
 * transaction that commits a chunk, see helpers/hold.ts) while the test changes the source, then let go.
 */
describe('a run reads one defined view of a changing source', () => {
  let t: TestDatabase;
  const size = 500;
  const customers = 6000;
  /** What a failed test may leave behind: let go of it before the next test. */
  const leftovers: { child?: ChildProcess; result?: Promise<CliResult>; hold: ChunkHold }[] = [];
  afterEach(async () => {
    for (const { child, result, hold } of leftovers.splice(0)) {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await hold.release();
      await result?.catch(() => undefined);
    }
  });

  const keys = async (): Promise<string[]> =>
    (await t.pool.query<{ k: string }>('SELECT customer_id::text k FROM customers ORDER BY customer_id')).rows.map((r) => r.k);
  const published = async () => publishedSnapshot(t);
  const publishedKeys = async (): Promise<string[]> => {
    const { rows } = await t.pool.query<{ k: string }>('SELECT customer_id::text k FROM scoring.customer_scores ORDER BY customer_id');
    return rows.map((r) => r.k);
  };
  const sortKeys = (ks: Iterable<string>) => [...ks].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));

  /** A key not in the table, just above the `i`-th key (0-based, in key order), within the same chunk. */
  async function freeKeyAfter(sorted: string[], i: number): Promise<string> {
    for (let j = i; j < sorted.length - 1; j++) {
      if (BigInt(sorted[j + 1] as string) - BigInt(sorted[j] as string) > 1n) return (BigInt(sorted[j] as string) + 1n).toString();
    }
    throw new Error('no gap in the keys');
  }
  const moveKey = (from: string, to: string) => t.pool.query('UPDATE customers SET customer_id = $2 WHERE customer_id = $1', [from, to]);
  /** A new customer with `key` and the columns of customer `like`. */
  const insertLike = (key: string, like: string) =>
    t.pool.query(
      `INSERT INTO customers SELECT (jsonb_populate_record(NULL::customers, to_jsonb(c) || jsonb_build_object('customer_id', $1::bigint))).* FROM customers c WHERE customer_id = $2`,
      [key, like],
    );

  /** Starts `scorejob ...args` as a child process (to be killed -9) and waits until it is held at chunk `chunkNo`. */
  async function startHeld(chunkNo: number, args: string[] = ['run', '--chunk-size', String(size)]) {
    const hold = await holdAtChunk(t.pool, chunkNo);
    const child = startCli(args, t.env);
    leftovers.push({ child, hold });
    const [started] = await Promise.all([waitForLog(child, (l) => typeof l.run_id === 'string' && /started|resumed/.test(String(l.msg))), hold.held()]);
    return { child, hold, runId: started.run_id as string };
  }

  /**
   * Runs `scorejob ...args` in this process (it is not killed: the process is not the subject) and waits until it
   * is held at `hold`; the run's id is the ledger's running run.
   */
  async function runHeld(hold: ChunkHold, args: string[]) {
    const result = runCliInProcess(args, t.env);
    leftovers.push({ result, hold });
    const ended = result.then((r) => Promise.reject(new Error(`scorejob ${args.join(' ')} ended before the hold (exit ${r.code}): ${r.stderr}`)));
    await Promise.race([hold.held(), ended]);
    const { rows } = await t.pool.query<{ id: string }>(`SELECT max(run_id)::text id FROM scoring.score_runs WHERE status = 'running'`);
    return { result, hold, runId: rows[0]?.id as string };
  }
  /** `runHeld` at chunk `chunkNo`. */
  const runHeldAtChunk = async (chunkNo: number, args: string[] = ['run', '--chunk-size', String(size)]) => runHeld(await holdAtChunk(t.pool, chunkNo), args);

  async function killHeld(chunkNo: number): Promise<string> {
    const { child, hold, runId } = await startHeld(chunkNo);
    child.kill('SIGKILL');
    await child.result;
    await hold.release();
    return runId;
  }

  const chunkAccounts = async (runId: string) =>
    (
      await t.pool.query<{ chunk_no: number; read: number; planned: number }>(
        `SELECT chunk_no, rows_scored + rows_rejected AS read, rows_planned::int AS planned FROM scoring.score_chunks WHERE run_id = $1 ORDER BY chunk_no`,
        [runId],
      )
    ).rows;

  const ok = (r: CliResult) => {
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  };

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers, seed: 41 });
  });
  afterAll(async () => t?.drop());

  it('an uninterrupted run scores exactly the source as of its start: keys moved back or forward, rows inserted below the minimum or above the maximum, rows deleted after chunk 3', async () => {
    await runInProcess(t, { chunkSize: size });
    const reference = await published();
    const before = await keys();
    expect(before).toHaveLength(customers);

    const { result, hold, runId } = await runHeldAtChunk(3);
    const back = before[9 * size + 10] as string; // chunk 10, not read yet
    const backTo = await freeKeyAfter(before, 1 * size + 10); // into chunk 2, committed
    const forward = before[20] as string; // chunk 1, committed
    const forwardTo = await freeKeyAfter(before, 10 * size + 10); // into chunk 11, not read yet
    const below = (BigInt(before[0] as string) - 1000n).toString();
    const above = (BigInt(before.at(-1) as string) + 1000n).toString();
    const deleted = before.slice(8 * size + 1, 8 * size + 6); // chunk 9
    await moveKey(back, backTo);
    await moveKey(forward, forwardTo);
    await insertLike(below, before[1] as string);
    await insertLike(above, before[2] as string);
    await t.pool.query('DELETE FROM customers WHERE customer_id = ANY($1::int8[])', [deleted]);
    await hold.release();
    ok(await result);

    // Every customer of the start exactly once, under the key it had then, with the score an unchanged source gives.
    const during = await published();
    expect(during.runs).toEqual([runId]);
    expect(await publishedKeys()).toEqual(before);
    expect(during.scores).toEqual(reference.scores);
    for (const c of await chunkAccounts(runId)) expect(c.read, `chunk ${c.chunk_no}`).toBe(c.planned);

    // The next run sees the changes: moved keys under their new key, new rows scored, deleted rows gone.
    await runInProcess(t, { chunkSize: size });
    const now = await keys();
    expect(now).toHaveLength(customers + 2 - deleted.length);
    expect(await publishedKeys()).toEqual(now);
    expect(now).toEqual(expect.arrayContaining([backTo, forwardTo, below, above]));
  });

  it('a table rewrite during a run (ALTER TABLE … TYPE) fails the chunk that reads nothing, naming the cause; resume, as advised, completes the run', async () => {
    await runInProcess(t, { chunkSize: size });
    const reference = await published();
    const { result, hold, runId } = await runHeldAtChunk(3);
    // Completes while the run is held: the run holds no lock on the source between chunk reads.
    await t.pool.query('ALTER TABLE customers ALTER COLUMN orders_12m TYPE bigint');
    await hold.release();
    const r = await result;
    try {
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(
        new RegExp(
          `run ${runId} failed: chunk \\d+ read 0 rows of customers where the run's snapshot held ${size}: the source was rewritten during the run \\(ALTER TABLE … TYPE, VACUUM FULL, CLUSTER or TRUNCATE\\).*resume it with \`scorejob resume ${runId}\``,
        ),
      );
      const run = await t.pool.query('SELECT status, error_kind FROM scoring.score_runs WHERE run_id = $1', [runId]);
      expect(run.rows[0]).toEqual({ status: 'failed', error_kind: 'data' });
      const failed = await t.pool.query<{ last_error: string }>(
        `SELECT last_error FROM scoring.score_chunks WHERE run_id = $1 AND status = 'pending' AND last_error IS NOT NULL`,
        [runId],
      );
      expect(failed.rows[0]?.last_error).toMatch(/rewritten during the run/);
      expect(await published()).toEqual(reference); // nothing published

      // Following the advice: the resumed run reads the source afresh, and every customer is scored.
      ok(await runCliInProcess(['resume', runId], t.env));
      const after = await published();
      expect(after.runs).toEqual([runId]);
      expect(after.scores).toEqual(reference.scores);
      for (const c of await chunkAccounts(runId)) expect(c.read, `chunk ${c.chunk_no}`).toBe(c.planned);
    } finally {
      await t.pool.query('ALTER TABLE customers ALTER COLUMN orders_12m TYPE integer');
    }
  });

  it('a table rewrite between the snapshot and the plan (or the recount of a resume) fails the run naming the rewrite, never a run missing rows; resume completes it', async () => {
    await runInProcess(t, { chunkSize: size });
    const reference = await published();
    const rewrite = (type: string) => t.pool.query(`ALTER TABLE customers ALTER COLUMN orders_12m TYPE ${type}`);
    const message = (id: string) =>
      new RegExp(
        `^scorejob: run ${id} failed: customers was rewritten \\(ALTER TABLE … TYPE, VACUUM FULL, CLUSTER or TRUNCATE\\) after the run took its snapshot of the source, which sees it empty; a resume takes a new snapshot; resume it with`,
      );
    try {
      // A new run, held once its snapshot is taken.
      let held = await runHeld(await holdAtSnapshot(t.pool), ['run', '--chunk-size', String(size)]);
      await rewrite('bigint');
      await held.hold.release();
      let r = await held.result;
      const runId = (r.logs.find((l) => typeof l.run_id === 'string')?.run_id ?? '') as string;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message(runId));
      expect(await published()).toEqual(reference);

      ok(await runCliInProcess(['resume', runId], t.env)); // plans afresh
      expect((await published()).scores).toEqual(reference.scores);

      // A resume of a planned run, held the same way: its unfinished chunks must not be counted (and read) empty.
      const killed = await killHeld(3);
      held = await runHeld(await holdAtSnapshot(t.pool), ['resume', killed]);
      await rewrite('integer');
      await held.hold.release();
      r = await held.result;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message(killed));
      expect((await published()).scores).toEqual(reference.scores);
      expect((await published()).runs).toEqual([runId]);

      ok(await runCliInProcess(['resume', killed], t.env));
      expect((await published()).scores).toEqual(reference.scores);
      for (const c of await chunkAccounts(killed)) expect(c.read, `chunk ${c.chunk_no}`).toBe(c.planned);
    } finally {
      await rewrite('integer');
    }
  });

  it('a resumed run reads its unfinished chunks as of the resume: with no chunk done, it scores exactly the source as of the resume, below the old minimum and above the old maximum too', async () => {
    const before = await keys();
    const runId = await killHeld(1); // chunk 1 rolled back: nothing done
    const below = (BigInt(before[0] as string) - 77n).toString();
    const above = (BigInt(before.at(-1) as string) + 77n).toString();
    await insertLike(below, before[5] as string);
    await insertLike(above, before[6] as string);
    await t.pool.query('DELETE FROM customers WHERE customer_id = ANY($1::int8[])', [before.slice(100, 103)]);
    await moveKey(before[4000] as string, await freeKeyAfter(before, 300));
    ok(await runCliInProcess(['resume', runId], t.env));
    expect(await publishedKeys()).toEqual(await keys());
    for (const c of await chunkAccounts(runId)) expect(c.read, `chunk ${c.chunk_no}`).toBe(c.planned);
  });

  it('a resumed run keeps what its done chunks read and reads the rest as of the resume (the rule for keys moved meanwhile)', async () => {
    const before = await keys();
    const runId = await killHeld(3); // chunks 1 and 2 done, keys up to before[2 * size - 1]
    const boundary = BigInt(before[2 * size - 1] as string);
    const back = before[5 * size + 3] as string;
    const backTo = await freeKeyAfter(before, 20);
    const forward = before[size + 7] as string;
    const forwardTo = await freeKeyAfter(before, 7 * size + 3);
    await moveKey(back, backTo); // from an unfinished chunk into a done one: not in this run
    await moveKey(forward, forwardTo); // from a done chunk into an unfinished one: in this run under both keys
    await insertLike((BigInt(before[0] as string) - 5n).toString(), before[9] as string); // below the done first chunk: not in this run
    await insertLike((BigInt(before.at(-1) as string) + 5n).toString(), before[9] as string); // the open last chunk: in this run
    await t.pool.query('DELETE FROM customers WHERE customer_id = ANY($1::int8[])', [before.slice(6 * size, 6 * size + 4)]);
    ok(await runCliInProcess(['resume', runId], t.env));

    const expected = sortKeys([...before.filter((k) => BigInt(k) <= boundary), ...(await keys()).filter((k) => BigInt(k) > boundary)]);
    expect(await publishedKeys()).toEqual(expected);
    expect(expected).not.toContain(backTo);
    expect(expected).toEqual(expect.arrayContaining([forward, forwardTo]));
    for (const c of await chunkAccounts(runId)) expect(c.read, `chunk ${c.chunk_no}`).toBe(c.planned);
    await runInProcess(t, { chunkSize: size }); // a new run: exactly the source again
    expect(await publishedKeys()).toEqual(await keys());
  });

  it('NULL keys that appear after the start-up check are still refused, in the run’s snapshot: the run fails naming them (exit 1); giving them keys and resuming, as advised, scores every row', async () => {
    await t.pool.query('CREATE TABLE customers_nk AS SELECT * FROM customers');
    await t.pool.query('CREATE UNIQUE INDEX ON customers_nk (customer_id)');
    const model = await modelCopy((m) => (m.source.table = 'customers_nk'));
    const { result, hold } = await runHeld(await holdAtRunStart(t.pool), ['run', '--model', model, '--chunk-size', String(size)]);
    await t.pool.query(`UPDATE customers_nk SET customer_id = NULL WHERE customer_id IN (SELECT customer_id FROM customers_nk ORDER BY customer_id LIMIT 3)`);
    await hold.release();
    const r = await result;
    expect(r.code).toBe(1);
    const runId = (r.logs.find((l) => typeof l.run_id === 'string')?.run_id ?? '') as string;
    expect(r.stderr).toMatch(
      new RegExp(
        `^scorejob: run ${runId} failed: key column customer_id of customers_nk has 3 NULL values: .*give those rows a key.*resume it with \`scorejob resume ${runId}\``,
      ),
    );
    await t.pool.query(
      `UPDATE customers_nk c SET customer_id = -n.rn FROM (SELECT ctid, row_number() OVER () rn FROM customers_nk WHERE customer_id IS NULL) n WHERE c.ctid = n.ctid`,
    );
    ok(await runCliInProcess(['resume', runId], t.env));
    const { rows } = await t.pool.query<{ n: number }>('SELECT count(*)::int n FROM customers_nk');
    expect(await publishedKeys()).toHaveLength(rows[0]?.n as number);
    await t.pool.query('DROP TABLE customers_nk');
  });

  it('the connection holding the run’s snapshot is lost mid-run: the run takes a new one for its remaining chunks, says so, and succeeds', async () => {
    await runInProcess(t, { chunkSize: size });
    const reference = await published();
    const { result, hold, runId } = await runHeldAtChunk(3, ['run', '--chunk-size', String(size), '--chunk-attempts', '3']);
    const first = await t.pool.query<{ s: string }>('SELECT source_snapshot s FROM scoring.score_runs WHERE run_id = $1', [runId]);
    const killed = await t.pool.query<{ n: number }>(
      `SELECT count(pg_terminate_backend(pid))::int n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'scorejob snapshot'`,
    );
    expect(killed.rows[0]?.n).toBe(1);
    await hold.release();
    const r = await result;
    ok(r);
    expect(r.logs.some((l) => l.level === 40 && /snapshot/.test(String(l.msg)) && /as of now/.test(String(l.msg)))).toBe(true);
    const second = await t.pool.query<{ s: string }>('SELECT source_snapshot s FROM scoring.score_runs WHERE run_id = $1', [runId]);
    expect(second.rows[0]?.s).toMatch(/^[0-9A-F]+-[0-9A-F]+-\d+$/);
    expect(second.rows[0]?.s).not.toBe(first.rows[0]?.s);
    expect((await published()).scores).toEqual(reference.scores);
    for (const c of await chunkAccounts(runId)) expect(c.read, `chunk ${c.chunk_no}`).toBe(c.planned);
  });

  it('idle_in_transaction_session_timeout on the database does not end the run’s snapshot', async () => {
    await runInProcess(t, { chunkSize: size });
    const reference = await published();
    await t.pool.query(`ALTER DATABASE ${t.name} SET idle_in_transaction_session_timeout = '1s'`);
    try {
      const { result, hold, runId } = await runHeldAtChunk(3);
      const first = await t.pool.query<{ s: string }>('SELECT source_snapshot s FROM scoring.score_runs WHERE run_id = $1', [runId]);
      // Wait (by polling, not by a fixed sleep) until the snapshot's connection has idled in its transaction past the timeout.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const { rows } = await t.pool.query<{ state: string; idle_ms: number }>(
          `SELECT state, (extract(epoch FROM now() - state_change) * 1000)::int AS idle_ms FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'scorejob snapshot'`,
        );
        expect(rows, 'the snapshot connection is still there').toHaveLength(1);
        if (rows[0]?.state === 'idle in transaction' && (rows[0]?.idle_ms ?? 0) > 1500) break;
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 100));
      }
      await hold.release();
      const r = await result;
      ok(r);
      expect(r.logs.filter((l) => l.level === 40)).toEqual([]);
      const second = await t.pool.query<{ s: string }>('SELECT source_snapshot s FROM scoring.score_runs WHERE run_id = $1', [runId]);
      expect(second.rows[0]?.s).toBe(first.rows[0]?.s);
      expect((await published()).scores).toEqual(reference.scores);
    } finally {
      await t.pool.query(`ALTER DATABASE ${t.name} RESET idle_in_transaction_session_timeout`);
    }
  });
});

/** Issue 11 item 6: a key at its type's minimum (and maximum), for each integer key type, in a run and in a resume. */
describe('keys at the limits of their type', () => {
  let t: TestDatabase;
  const limits = {
    int2: { min: -32768n, max: 32767n },
    int4: { min: -2147483648n, max: 2147483647n },
    int8: { min: -9223372036854775808n, max: 9223372036854775807n },
  } as const;

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedCustomers(t.pool, { customers: 30, seed: 5 });
    for (const [type, { min, max }] of Object.entries(limits)) {
      // 30 customers keyed min, min+1, … min+28 and max.
      await t.pool.query(`CREATE TABLE k_${type} AS SELECT * FROM customers`);
      await t.pool.query(
        `UPDATE k_${type} k SET customer_id = CASE WHEN n.rn = 30 THEN $2::numeric ELSE $1::numeric + n.rn - 1 END
           FROM (SELECT customer_id, row_number() OVER (ORDER BY customer_id) rn FROM customers) n WHERE k.customer_id = n.customer_id`,
        [min.toString(), max.toString()],
      );
      await t.pool.query(`ALTER TABLE k_${type} ALTER COLUMN customer_id TYPE ${type}, ADD PRIMARY KEY (customer_id)`);
    }
  });
  afterAll(async () => t?.drop());

  const keysOf = async (table: string) =>
    (await t.pool.query<{ k: string }>(`SELECT customer_id::text k FROM ${table} ORDER BY customer_id`)).rows.map((r) => r.k);
  const publishedKeys = async () =>
    (await t.pool.query<{ k: string }>('SELECT customer_id::text k FROM scoring.customer_scores ORDER BY customer_id')).rows.map((r) => r.k);

  for (const type of Object.keys(limits) as (keyof typeof limits)[]) {
    it(`${type} keys from the type's minimum to its maximum: a run and a resume score every row`, async () => {
      const model = await modelCopy((m) => (m.source.table = `k_${type}`));
      const expected = await keysOf(`k_${type}`);
      expect(expected[0]).toBe(limits[type].min.toString());
      expect(expected.at(-1)).toBe(limits[type].max.toString());
      for (const size of ['7', '1']) {
        const r = await runCliInProcess(['run', '--model', model, '--chunk-size', size], t.env);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(await publishedKeys()).toEqual(expected);
      }

      // Resume: killed while the first chunk (the type's minimum) commits, so the resume reads it.
      const hold = await holdAtChunk(t.pool, 1);
      const child = startCli(['run', '--model', model, '--chunk-size', '7'], t.env);
      const [started] = await Promise.all([waitForLog(child, (l) => typeof l.run_id === 'string' && /started/.test(String(l.msg))), hold.held()]);
      child.kill('SIGKILL');
      await child.result;
      await hold.release();
      const resumed = await runCliInProcess(['resume', started.run_id as string], t.env);
      expect(resumed.stderr).toBe('');
      expect(resumed.code).toBe(0);
      expect(await publishedKeys()).toEqual(expected);
    });
  }
});
