import { rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/**
 * Writes `content` to `file` atomically: a temporary file in the same directory (so the rename cannot
 * cross file systems), then a rename over the target. A reader (a metrics collector, a mail client)
 * sees the old file or the whole new one, never half of it; the temporary file is removed on failure.
 * The temporary name starts with a dot and ends in `.tmp`, so a collector reading `*.prom` never sees it.
 */
export async function writeFileAtomic(file: string, content: string, options?: { mode?: number }): Promise<void> {
  const target = resolve(file);
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.tmp`);
  try {
    await writeFile(tmp, content, options?.mode === undefined ? undefined : { mode: options.mode });
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}
