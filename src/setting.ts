/**
 * One option of the CLI, defined once: its flag and help, its environment variable, its default, and
 * how its value is checked. Commander applies the precedence (flag, then environment, then default)
 * and records where the value came from; `read` (src/cli/options.ts) checks it, naming the flag or the variable.
 * Below the CLI so that a run feature can define its own settings, which the CLI adds to its commands.
 */
export interface Setting<T> {
  /** commander flags, e.g. `--chunk-size <n>`. */
  flags: string;
  description: string;
  env?: string;
  /** The default, as a flag would spell it (shown in help). */
  default?: string;
  /** A variable set to the empty string counts as unset (paths, optional gates). */
  blankIsUnset?: boolean;
  /** `scorejob schedule` takes it too and passes it on to each run when given as a flag. */
  forward?: 'value' | 'path';
  /** The value, checked; `name` is the flag or the variable the value came from. */
  parse: (value: string, name: string) => T;
}

/** A setting with a default: reading it always gives a value. */
export interface DefaultedSetting<T> extends Setting<T> {
  default: string;
}
