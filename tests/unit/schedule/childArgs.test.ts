import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../../src/config.js';
import { childArgs } from '../../../src/schedule/child.js';

const tick = new Date('2026-12-01T02:30:00Z');
const spec = { expression: '30 2 1 * *' };

describe('a scheduled child run connects where the scheduler does', () => {
  it('passes --libpq-defaults on when the scheduler was told the defaults are meant', () => {
    const config = resolveConfig({ libpqDefaults: true, logLevel: 'info', pretty: false }, { PGUSER: 'job' }, false);
    const args = childArgs(config, spec, tick, []);
    expect(args).toContain('--libpq-defaults');
    expect(args.indexOf('--libpq-defaults')).toBeLessThan(args.indexOf('run'));
  });

  it('adds nothing when a variable names the database (the child reads the same environment)', () => {
    const config = resolveConfig({ libpqDefaults: true, logLevel: 'info', pretty: false }, { DATABASE_URL: 'postgres://job@db/crm' }, false);
    expect(childArgs(config, spec, tick, [])).not.toContain('--libpq-defaults');
  });
});
