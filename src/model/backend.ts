import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { BackendChoice } from '../config.js';
import { UsageError } from '../errors.js';

/** A TF.js backend scorejob can run on, fastest first. */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

/** Called for each backend `auto` tried and passed over, with why (for the log). */
export type OnBackendSkipped = (backend: BackendName, reason: string) => void;

const require = createRequire(import.meta.url);

// A variable, not a literal: tfjs-node is an optional dependency and usually absent, so neither tsc nor
// a bundler may try to resolve it.
const tfjsNodePackage = '@tensorflow/tfjs-node';

/**
 * Makes a backend the active one for every tensor of the process and returns its name.
 *
 * `auto` takes tfjs-node (native libtensorflow) when it is installed and loads, else WebAssembly, else
 * plain JavaScript; a forced choice that cannot start is a {@link UsageError} naming `--backend`.
 */
export async function selectBackend(choice: BackendChoice, onSkipped?: OnBackendSkipped): Promise<BackendName> {
  // PROD mode only silences TF.js console warnings, e.g. the cpu backend's "install tfjs-node" banner:
  // scorejob reports the backend in use itself.
  tf.env().set('PROD', true);
  const order: BackendName[] = choice === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [choice];
  for (const name of order) {
    const failure = await starters[name]();
    if (failure === undefined) return name;
    if (choice !== 'auto') throw new UsageError(`--backend ${name}: ${failure}`);
    onSkipped?.(name, failure);
  }
  throw new UsageError(`--backend auto: no TF.js backend could start (${order.join(', ')} all failed)`);
}

/** Each starter returns undefined on success, else why the backend cannot be used. */
const starters: Record<BackendName, () => Promise<string | undefined>> = {
  async tensorflow() {
    try {
      require.resolve(tfjsNodePackage);
    } catch {
      return `${tfjsNodePackage} is not installed (it needs libtensorflow; see docs/models.md, "Backends")`;
    }
    try {
      await import(tfjsNodePackage);
    } catch (err) {
      return `${tfjsNodePackage} is installed but does not load: ${firstLine(err)}`;
    }
    if (tf.findBackendFactory('tensorflow') === null) {
      // It brought its own copy of tfjs-core (a version mismatch) and registered the backend there.
      return `${tfjsNodePackage} loaded but did not register its backend with @tensorflow/tfjs-core ${tf.version_core} (versions differ?)`;
    }
    return activate('tensorflow');
  },

  async wasm() {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    if (!wasmPathsSet) {
      // In Node the .wasm files are read from disk; point at the package's dist folder (where they sit
      // next to its main file) rather than relying on Emscripten guessing, which breaks once bundled.
      wasm.setWasmPaths(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + path.sep);
      wasmPathsSet = true;
    }
    const failure = await activate('wasm');
    return failure === undefined ? undefined : `the WebAssembly backend ${failure}`;
  },

  async cpu() {
    await import('@tensorflow/tfjs-backend-cpu');
    return activate('cpu');
  },
};

// setWasmPaths throws once the wasm backend has initialised, so it is called once per process.
let wasmPathsSet = false;

async function activate(name: BackendName): Promise<string | undefined> {
  try {
    if (await tf.setBackend(name)) {
      await tf.ready();
      return undefined;
    }
    return 'failed to initialise';
  } catch (err) {
    return `failed to initialise: ${firstLine(err)}`;
  }
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n', 1)[0] ?? message;
}
