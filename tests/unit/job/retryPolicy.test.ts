import { describe, expect, it } from 'vitest';
import { decideRetry, failureClass, type RetryInput } from '../../../src/chunks/retryPolicy.js';
import { ModelError, SnapshotLostError } from '../../../src/errors.js';

const pgError = (code: string) => Object.assign(new Error(`server error ${code}`), { code });
const base: RetryInput = { failure: 'transient', counted: true, attempts: 1, maxAttempts: 4, backoffMs: 500, stopping: false };

describe('the chunk retry policy', () => {
  it("tells an unreachable database from a chunk's own transient or permanent failure", () => {
    expect(failureClass(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe('connection');
    expect(failureClass(pgError('57P03'))).toBe('connection'); // starting up
    expect(failureClass(pgError('57P01'))).toBe('connection'); // admin shutdown
    expect(failureClass(new Error('Connection terminated unexpectedly'))).toBe('connection');
    expect(failureClass(pgError('40001'))).toBe('transient');
    expect(failureClass(pgError('40P01'))).toBe('transient');
    expect(failureClass(new SnapshotLostError('gone'))).toBe('transient');
    expect(failureClass(pgError('22P02'))).toBe('permanent');
    expect(failureClass(new ModelError(3, new Error('GatherV2: the index value 4 is not in [0, 3]')))).toBe('permanent');
  });

  it('backs off, doubling, while the chunk has attempts left, and fails on the last', () => {
    expect(decideRetry({ ...base, attempts: 1 })).toEqual({ action: 'retry', waitMs: 500 });
    expect(decideRetry({ ...base, attempts: 3 })).toEqual({ action: 'retry', waitMs: 2000 });
    expect(decideRetry({ ...base, attempts: 4 })).toEqual({ action: 'fail' });
    expect(decideRetry({ ...base, maxAttempts: 1 })).toEqual({ action: 'fail' });
  });

  it('a wait for the database does not use up an attempt: retried at once, whatever the count', () => {
    expect(decideRetry({ ...base, failure: 'connection', counted: false, attempts: 3, maxAttempts: 3 })).toEqual({ action: 'retry', waitMs: 0 });
    expect(decideRetry({ ...base, failure: 'connection', counted: true, attempts: 3, maxAttempts: 3 })).toEqual({ action: 'fail' });
  });

  it('more separate outages than --chunk-attempts during one chunk fail it (a chunk that brings the server down each time)', () => {
    expect(decideRetry({ ...base, failure: 'connection', counted: false, attempts: 0, outages: 4, maxAttempts: 4 })).toEqual({ action: 'retry', waitMs: 0 });
    expect(decideRetry({ ...base, failure: 'connection', counted: false, attempts: 0, outages: 5, maxAttempts: 4 })).toEqual({ action: 'fail' });
  });

  it('a permanent failure or a stop request fails at once', () => {
    expect(decideRetry({ ...base, failure: 'permanent' })).toEqual({ action: 'fail' });
    expect(decideRetry({ ...base, stopping: true })).toEqual({ action: 'fail' });
  });
});
