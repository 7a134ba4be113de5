import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

const created: string[] = [];

// Registered once, when a test file first imports this module: at that point `after` binds to
// the file's root test, so folders made inside hooks live until the whole file is done.
after(() => Promise.all(created.map((d) => rm(d, { recursive: true, force: true }))));

/** A fresh temporary folder, removed when the test file finishes. */
export async function tempDir(prefix = 'kit-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/** Whether the file system of `dir` takes O_DIRECT (tmpfs before Linux 6.6 does not). */
export async function takesDirectIo(dir: string): Promise<boolean> {
  const { open, rm: remove } = await import('node:fs/promises');
  const { constants } = await import('node:fs');
  const probe = join(dir, '.direct-probe');
  try {
    await (await open(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_DIRECT)).close();
    return true;
  } catch {
    return false;
  } finally {
    await remove(probe, { force: true });
  }
}

/**
 * Whether this process holds `path` open with O_DIRECT right now (Linux: /proc/self/fdinfo);
 * undefined where that cannot be told (no /proc).
 */
export async function openedDirect(path: string): Promise<boolean | undefined> {
  const { readdir, readlink, readFile } = await import('node:fs/promises');
  const { constants } = await import('node:fs');
  let fds: string[];
  try {
    fds = await readdir('/proc/self/fd');
  } catch {
    return undefined;
  }
  for (const fd of fds) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target !== path) continue;
    const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8').catch(() => '');
    const flags = /flags:\s*([0-7]+)/.exec(info)?.[1];
    if (flags && (parseInt(flags, 8) & constants.O_DIRECT) !== 0) return true;
  }
  return false;
}
