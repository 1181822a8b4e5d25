import { describe, expect, it } from 'vitest';
import { decideRetry, failureClass, type RetryInput } from '../../../src/chunks/retryPolicy.js';

const pgError = (code: string) => Object.assign(new Error(`server error ${code}`), { code });
const base: RetryInput = { failure: 'transient', counted: true, attempts: 1, maxAttempts: 3, backoffMs: 100, stopping: false };

/** The chunk retry policy at its edges: the server answers "too many connections", the last attempt, the first outage. */
describe('the chunk retry policy at its edges', () => {
  it('a full connection table (53300) is a transient failure of the chunk, not an unreachable database', () => {
    expect(failureClass(pgError('53300'))).toBe('transient');
    expect(failureClass(pgError('08006'))).toBe('connection');
  });

  it('attempt N-1 of N is retried after the doubled backoff, attempt N fails', () => {
    expect(decideRetry({ ...base, attempts: 2 })).toEqual({ action: 'retry', waitMs: 200 });
    expect(decideRetry({ ...base, attempts: 3 })).toEqual({ action: 'fail' });
  });

  it('an uncounted failure without an outage count is the first outage: retried at once, even at --chunk-attempts 1', () => {
    expect(decideRetry({ ...base, failure: 'connection', counted: false, attempts: 0, maxAttempts: 1 })).toEqual({ action: 'retry', waitMs: 0 });
  });
});
