import { createHash, randomUUID } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { link, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { lock } from 'proper-lockfile';
import { errnoCode } from '../errors.js';

/**
 * A lock file naming its owner, for work a killed process must not keep locked: a partial
 * download is taken over at once when its owner is gone (a time-based stale lock would make
 * the next `kit pull` start again from zero for the first seconds). The store is on this
 * machine, so "is that process alive" is a question we can ask, for processes of our own pid
 * namespace; the owner of any other namespace is presumed alive (the caller then works
 * without the lock, e.g. downloads from zero into its own temp file).
 *
 * Content: `<pid> <namespace tag>\n`, present from the moment the file exists (it is written
 * under a temp name and hard-linked into place, which fails if the lock exists).
 */

export type OwnerState = 'active' | 'dead' | 'unknown';

let cachedOwnerTag: string | undefined;

/**
 * Identifies the pid namespace this process runs in (Linux: the inode of /proc/self/ns/pid;
 * elsewhere a hash of the host name). Two containers sharing a store folder see different
 * pids: a process must not declare dead a pid of another namespace that merely is not
 * visible from its own.
 */
export function ownerTag(): string {
  if (cachedOwnerTag !== undefined) return cachedOwnerTag;
  let tag: string | undefined;
  try {
    const m = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'));
    if (m) tag = Number(m[1]).toString(36);
  } catch {
    // not Linux, or /proc not mounted
  }
  tag ??= `h${createHash('sha256').update(hostname()).digest('hex').slice(0, 10)}`;
  cachedOwnerTag = tag;
  return tag;
}

/**
 * The name of a temp file this process writes (in the ingest area, or beside a lock): it names
 * its writer, so whoever finds it after a kill can tell that nobody will ever finish it.
 */
export function tempName(uuid: string): string {
  return `${process.pid}-${ownerTag()}-${uuid}.tmp`;
}

export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

/** Who holds a lock, judged from its content (undefined content: the file is gone or unreadable). */
export function lockOwnerOf(text: string | undefined): { pid?: number; owner: OwnerState } {
  if (text === undefined) return { owner: 'unknown' };
  const m = /^(\d+)(?: ([a-z0-9]+))?\s*$/.exec(text);
  if (!m) return { owner: 'dead' }; // garbage: no process can be waiting on it
  const pid = Number(m[1]);
  if (m[2] !== undefined && m[2] !== ownerTag()) return { pid, owner: 'unknown' };
  return { pid, owner: processAlive(pid) ? 'active' : 'dead' };
}

export async function readLockOwner(path: string): Promise<{ pid?: number; owner: OwnerState }> {
  return lockOwnerOf(await readFile(path, 'utf8').catch(() => undefined));
}

/** Takes the lock at `path`; a release function, or undefined when a live process holds it. */
export async function tryPidLock(path: string): Promise<(() => Promise<void>) | undefined> {
  const mine = `${process.pid} ${ownerTag()}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await createWithContent(path, mine)) {
      return async () => {
        await rm(path, { force: true });
      };
    }
    const text = await readFile(path, 'utf8').catch(() => undefined);
    if (text === undefined) continue; // released meanwhile: try again
    if (lockOwnerOf(text).owner !== 'dead') return undefined;
    if (!(await removeDeadLock(path, text))) return undefined;
  }
  return undefined;
}

/** Creates `path` holding `content`, atomically; false when it exists. */
async function createWithContent(path: string, content: string): Promise<boolean> {
  const tmp = join(dirname(path), tempName(randomUUID()));
  await writeFile(tmp, content, { mode: 0o644 });
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Removes a dead owner's lock, and only it. Several processes may judge the same lock dead at
 * once; the slower must not delete the lock the faster has just taken. So the removal happens
 * under a short takeover guard (proper-lockfile, which expires on its own should a process die
 * holding it): inside, the lock still holding the dead content can only be the dead lock, since
 * a lock file is only ever removed by its owner or under this guard. false: another process is
 * taking it over.
 */
async function removeDeadLock(path: string, deadContent: string): Promise<boolean> {
  let release: () => Promise<void>;
  try {
    release = await lock(`${path}.takeover`, { stale: 10_000, retries: 0, realpath: false });
  } catch (err) {
    if (errnoCode(err) === 'ELOCKED') return false;
    throw err;
  }
  try {
    const now = await readFile(path, 'utf8').catch(() => undefined);
    // Gone: released, or removed by an earlier guard holder who may be creating its own lock
    // right now; removing "it" here could remove that new lock. Just try to create.
    if (now === undefined) return true;
    if (now !== deadContent) return false;
    await rm(path, { force: true });
    return true;
  } finally {
    await release().catch(() => undefined);
  }
}
