import type { DbConfig } from '../config.js';
import { SqlState, sqlStateOf } from './sqlstate.js';

/**
 * One line a person understands for a database error: the root cause, never a stack trace,
 * never a password.
 */
export function describeDbError(err: unknown, db?: DbConfig): string {
  const where = db ? `${db.host}:${db.port}` : 'the server';
  // "the server at db:5432" with a config, plain "the server" without (never "the server at the server").
  const server = db ? `the server at ${where}` : 'the server';
  const e = (typeof err === 'object' && err !== null ? err : {}) as { code?: string; message?: string; column?: string; table?: string };
  const state = sqlStateOf(err);
  switch (e.code) {
    case 'ECONNREFUSED':
      return `connection to ${where} refused (is PostgreSQL running there?)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host of ${where} not found`;
    case 'ETIMEDOUT':
      return `connection to ${where} timed out`;
    case 'ECONNRESET':
    case 'EPIPE':
      return `connection to ${where} lost`;
  }
  if (state === SqlState.adminShutdown || state === SqlState.crashShutdown)
    return `connection to ${where} lost (the server ended the session: ${scrub(e.message)})`;
  if (state === SqlState.cannotConnectNow) return `${server} is starting up or shutting down`;
  if (state === SqlState.invalidPassword) return `password authentication failed for user "${db?.user ?? '?'}" (check PGPASSWORD or DATABASE_URL)`;
  if (isStatementTimeout(err)) {
    // What to do depends on where it hit (a chunk's statement, or publish, which scales with the run): the run's advice says it (src/run/advice.ts).
    return `a statement ran longer than statement_timeout and was canceled`;
  }
  if (state === SqlState.readOnlySqlTransaction) return `the database is read-only (${scrub(e.message)})`;
  if (state === SqlState.diskFull) return `the database server's disk is full (${scrub(e.message)})`;
  if (state === SqlState.invalidCatalogName) return `database "${db?.database ?? '?'}" does not exist`;
  if (state !== undefined && state.startsWith('08')) return `connection to ${where} lost (${scrub(e.message)})`;
  const message = scrub(e.message ?? String(err));
  if (/Connection terminated|connection is closed|Client has encountered a connection error/i.test(message)) {
    return `connection to ${where} lost`;
  }
  if (/timeout exceeded when trying to connect/i.test(message)) return `connection to ${where} timed out`;
  return message;
}

/** A statement canceled by statement_timeout (not by a person's pg_cancel_backend, same SQLSTATE). */
export function isStatementTimeout(err: unknown): boolean {
  const message = typeof err === 'object' && err !== null ? (err as { message?: unknown }).message : undefined;
  return sqlStateOf(err) === SqlState.queryCanceled && typeof message === 'string' && /statement timeout/i.test(message);
}

/**
 * Removes anything that looks like a password from a message (URLs with user:password@).
 * @internal exported for tests
 */
export function scrub(message: string | undefined): string {
  if (message === undefined) return '';
  return message.replace(/(postgres(?:ql)?:\/\/[^:/@\s]*):[^@\s]*@/gi, '$1:***@').split('\n')[0] ?? '';
}
