import { open, readFile, rm } from 'node:fs/promises';
import { errnoCode } from '../errors.js';

/**
 * A lock file naming its owner's process id, for work a killed process must not keep locked:
 * a partial download is taken over at once when its owner is gone (a time-based stale lock
 * would make the next `kit pull` start again from zero for the first seconds). The store is
 * on this machine, so "is that process alive" is a question we can ask.
 */
export async function tryPidLock(path: string): Promise<(() => Promise<void>) | undefined> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return async () => {
        await rm(path, { force: true });
      };
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
    const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) return undefined;
    if (owner === process.pid) return undefined;
    // The owner is gone (or the file is unreadable garbage): take the lock over.
    await rm(path, { force: true });
  }
  return undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}
