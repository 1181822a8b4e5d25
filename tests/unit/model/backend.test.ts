import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import { selectBackend, type BackendName } from '../../../src/model/backend.js';

describe('selectBackend', () => {
  it('auto: passes over tfjs-node when it is not installed, saying why, and takes wasm', async () => {
    const skipped: [BackendName, string][] = [];
    const name = await selectBackend('auto', (backend, reason) => skipped.push([backend, reason]));
    expect(name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(skipped).toEqual([['tensorflow', '@tensorflow/tfjs-node is not installed (it needs libtensorflow; see docs/models.md, "Backends")']]);
  });

  it('a forced backend is the one in use', async () => {
    expect(await selectBackend('cpu')).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(await selectBackend('wasm')).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(tf.add(tf.scalar(1), tf.scalar(2)).dataSync()[0]).toBe(3);
  });

  it('a forced backend that cannot start is a usage error naming --backend', async () => {
    const err = await selectBackend('tensorflow').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toBe(
      '--backend tensorflow: @tensorflow/tfjs-node is not installed (it needs libtensorflow; see docs/models.md, "Backends")',
    );
  });
});
