import { describe, expect, it } from 'vitest';
import type { DbConfig } from '../../../src/config.js';
import { describeDbError, scrub } from '../../../src/db/describeError.js';
import { SqlState } from '../../../src/db/sqlstate.js';

const secret = 'hunter2-S3cret';
const db: DbConfig = { host: 'db.example', port: 5432, user: 'job', database: 'prod', password: secret, sslmode: undefined };

/** A server error as pg gives it: SQLSTATE in `code`, the server's text in `message`. */
const serverError = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('describeDbError: one line, never a password', () => {
  it('masks user:password@ of a connection URL quoted in a server message', () => {
    const text = describeDbError(serverError('XX000', `could not connect to server postgres://job:${secret}@db.example:5432/prod: refused`), db);
    expect(text).toBe('could not connect to server postgres://job:***@db.example:5432/prod: refused');
  });

  it('masks every URL of a message, postgresql:// and any letter case too', () => {
    const text = scrub(`a postgresql://u1:${secret}@h1/d and POSTGRES://u2:p%40ss@h2/d`);
    expect(text).toBe('a postgresql://u1:***@h1/d and POSTGRES://u2:***@h2/d');
    expect(scrub(`postgres://:${secret}@h/d`)).toBe('postgres://:***@h/d');
  });

  it('keeps a URL without a password as it is', () => {
    expect(scrub('see postgres://job@db.example/prod')).toBe('see postgres://job@db.example/prod');
  });

  it('keeps only the first line (a server DETAIL or a stack never reaches the terminal)', () => {
    expect(scrub(`first postgres://a:${secret}@h/d\nsecond postgres://a:${secret}@h/d`)).toBe('first postgres://a:***@h/d');
    expect(scrub(undefined)).toBe('');
  });

  it.each([
    ['admin shutdown', SqlState.adminShutdown, /^connection to db\.example:5432 lost \(the server ended the session: /],
    ['read-only', SqlState.readOnlySqlTransaction, /^the database is read-only \(/],
    ['disk full', SqlState.diskFull, /^the database server's disk is full \(/],
    ['connection class 08', '08006', /^connection to db\.example:5432 lost \(/],
    ['any other SQLSTATE', '42P01', /^relation x at postgres:\/\/job:\*\*\*@/],
  ])('%s: the server message is scrubbed', (_name, code, shape) => {
    const text = describeDbError(serverError(code, `relation x at postgres://job:${secret}@db.example/prod\nDETAIL: postgres://job:${secret}@x`), db);
    expect(text).toMatch(shape);
    expect(text).not.toContain(secret);
    expect(text).not.toContain('\n');
  });

  it('a wrong password names the user, not the password', () => {
    const text = describeDbError(serverError(SqlState.invalidPassword, `password authentication failed for user "job"`), db);
    expect(text).toBe('password authentication failed for user "job" (check PGPASSWORD or DATABASE_URL)');
  });

  it('network errors name host:port only', () => {
    expect(describeDbError(Object.assign(new Error(`connect ECONNREFUSED`), { code: 'ECONNREFUSED' }), db)).toBe(
      'connection to db.example:5432 refused (is PostgreSQL running there?)',
    );
    expect(describeDbError(new Error(`Connection terminated unexpectedly postgres://job:${secret}@h`), db)).toBe('connection to db.example:5432 lost');
  });

  it('a server starting up is "the server at host:port" with a config and "the server" without, never both', () => {
    const starting = serverError(SqlState.cannotConnectNow, 'the database system is starting up');
    expect(describeDbError(starting, db)).toBe('the server at db.example:5432 is starting up or shutting down');
    expect(describeDbError(starting)).toBe('the server is starting up or shutting down');
    expect(`chunk 32 failed (${describeDbError(starting)})`).not.toMatch(/the server at the server/);
  });

  it('statement_timeout: the fact only; the advice depends on where it hit (src/run/advice.ts)', () => {
    const text = describeDbError(serverError(SqlState.queryCanceled, 'canceling statement due to statement timeout'), db);
    expect(text).toBe('a statement ran longer than statement_timeout and was canceled');
  });
});
