import { describe, expect, it } from 'vitest';
import { isTransient, sqlStateOf } from '../../../src/db/sqlstate.js';

/** A Node socket error as node:net makes it (a write into a socket the server closed). */
const errno = (code: string, syscall = 'write') => Object.assign(new Error(`${syscall} ${code}`), { code, errno: -32, syscall });

describe('sqlStateOf and isTransient', () => {
  it('a Node errno of five letters (EPIPE) is no SQLSTATE, and a lost socket is transient', () => {
    // EPIPE came from a chunk's COPY into a socket a server restart had closed: read as SQLSTATE "EPIPE",
    // it failed the run at once instead of retrying the chunk.
    expect(sqlStateOf(errno('EPIPE'))).toBeUndefined();
    expect(isTransient(errno('EPIPE'))).toBe(true);
    expect(isTransient(errno('ECONNRESET', 'read'))).toBe(true);
  });

  it('SQLSTATEs, letters included, are read as such', () => {
    const db = (code: string) => Object.assign(new Error('x'), { code, severity: 'ERROR' });
    expect(sqlStateOf(db('57P01'))).toBe('57P01');
    expect(sqlStateOf(db('XX000'))).toBe('XX000');
    expect(sqlStateOf(db('P0001'))).toBe('P0001');
    expect(isTransient(db('57P01'))).toBe(true);
    expect(isTransient(db('08006'))).toBe(true);
    expect(isTransient(db('42703'))).toBe(false);
  });
});
