import type { RunParams } from './types.js';

/**
 * A run's specification as stored in its params, frozen: what `resume` and a joining worker read back,
 * and what `scorejob run` builds (src/run/runSpec.ts), through this one function. Nothing downstream
 * may change it; a feature keeps its own state on itself.
 */
export function frozenRunSpec(params: RunParams): Readonly<RunParams> {
  return deepFreeze(structuredClone(params));
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
