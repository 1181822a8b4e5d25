/** PostgreSQL SQLSTATE codes scorejob reacts to, by name (Appendix A of the PostgreSQL manual). */
export const SqlState = {
  undefinedTable: '42P01',
  undefinedColumn: '42703',
  undefinedFunction: '42883',
  invalidSchemaName: '3F000',
  insufficientPrivilege: '42501',
  invalidPassword: '28P01',
  invalidAuthorization: '28000',
  invalidCatalogName: '3D000',
  invalidTextRepresentation: '22P02',
  invalidParameterValue: '22023',
  undefinedObject: '42704',
  datatypeMismatch: '42804',
  cannotCoerce: '42846',
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  lockNotAvailable: '55P03',
  queryCanceled: '57014',
  adminShutdown: '57P01',
  crashShutdown: '57P02',
  cannotConnectNow: '57P03',
  readOnlySqlTransaction: '25006',
  uniqueViolation: '23505',
  diskFull: '53100',
  outOfMemory: '53200',
  tooManyConnections: '53300',
} as const;

/** The SQLSTATE of a pg error, if it is one. */
export function sqlStateOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = err.code;
    // Five characters, but not a Node errno that happens to have five (EPIPE, EPERM, EBUSY): no SQLSTATE
    // class begins with E. Read as a SQLSTATE, a chunk's EPIPE once failed a run instead of retrying it.
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !/^E[A-Z]{4}$/.test(code)) return code;
  }
  return undefined;
}

const connectionErrnos = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * Whether an error is worth retrying: the connection went away, the server is restarting,
 * or the transaction lost a serialization race. Everything else (missing column, bad data,
 * permission) fails fast.
 */
export function isTransient(err: unknown): boolean {
  const state = sqlStateOf(err);
  if (state !== undefined) {
    return (
      state.startsWith('08') ||
      state === SqlState.serializationFailure ||
      state === SqlState.deadlockDetected ||
      state === SqlState.adminShutdown ||
      state === SqlState.crashShutdown ||
      state === SqlState.cannotConnectNow ||
      state === SqlState.tooManyConnections
    );
  }
  if (typeof err === 'object' && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && connectionErrnos.has(code)) return true;
    const message = (err as { message?: unknown }).message;
    if (typeof message === 'string' && /Connection terminated|Client has encountered a connection error|connection is closed/i.test(message)) {
      return true;
    }
  }
  return false;
}
