// A process that runs `scorejob run` through the built library (dist/, as bin/scorejob does) when its parent
// says so: started ahead, with TF.js loaded and the model read once, so that a kill -9 step of the model-based
// tests (tests/model/killChild.ts) pays no process start. It runs one run, then waits to be killed.
import process from 'node:process';
import { defaultRunOptions, resolveConfig } from '../../dist/config.js';
import { createLogger } from '../../dist/log.js';
import { startRun } from '../../dist/run/runJob.js';
import { loadModel } from '../../dist/model/load.js';

const [modelDir] = process.argv.slice(2);
(await loadModel(modelDir, { backend: 'auto' })).dispose();
process.once('message', (msg) => {
  const config = resolveConfig({ logLevel: 'silent', pretty: false }, { DATABASE_URL: msg.url }, false);
  const ctx = { config, log: createLogger({ level: 'silent', pretty: false }), stop: { requested: undefined } };
  startRun(ctx, { ...defaultRunOptions(modelDir), ...msg.options }).then(
    () => process.send({ ended: 'succeeded' }),
    (err) => process.send({ ended: String(err?.message ?? err) }),
  );
});
process.send({ ready: true });
