import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RunOptions } from '../../src/config.js';

const script = fileURLToPath(new URL('./runChild.mjs', import.meta.url));

/** A started child process (tests/model/runChild.mjs) ready to run `scorejob run` once. */
export interface RunChild {
  /** Starts the run on the database at `url`; the child is to be killed with SIGKILL. */
  run(url: string, options: Partial<RunOptions>): void;
  /** Resolves if the run ends, with how ("succeeded" or its error): a run to be killed never should. */
  ended: Promise<string>;
  /** SIGKILL, and resolves once the process is gone. */
  kill(): Promise<void>;
}

function start(modelDir: string): Promise<RunChild> {
  const child: ChildProcess = fork(script, [modelDir], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
  });
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ended = new Promise<string>((resolve) => child.on('message', (m: { ended?: string }) => m.ended !== undefined && resolve(m.ended)));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    void gone.then(() => reject(new Error(`the run child (${script}) exited before it was ready`)));
    child.once('message', () =>
      resolve({
        run: (url, options) => child.send({ url, options }),
        ended,
        kill: async () => {
          child.kill('SIGKILL');
          await gone;
        },
      }),
    );
  });
}

/** One child started ahead per model directory: taking it starts the next, while the step that took it runs. */
const spares = new Map<string, Promise<RunChild>>();

export function takeRunChild(modelDir: string): Promise<RunChild> {
  const next = spares.get(modelDir) ?? start(modelDir);
  const spare = start(modelDir);
  spare.catch(() => undefined);
  spares.set(modelDir, spare);
  return next;
}

/** Kills the children started ahead (at the end of a test file). */
export async function stopRunChildren(): Promise<void> {
  const all = [...spares.values()];
  spares.clear();
  for (const c of all) await (await c.catch(() => undefined))?.kill();
}
