import { setTimeout as sleep } from 'node:timers/promises';
import { lock } from 'proper-lockfile';
import { ExitCode, KitError, errnoCode } from '../errors.js';

/** How long to wait for another process before giving up. */
const LOCK_WAIT_MS = 30_000;
/**
 * A lock not refreshed for this long belongs to a dead process and may be taken over.
 * proper-lockfile refreshes the lock's mtime every stale/2 while it is held.
 */
const LOCK_STALE_MS = 10_000;

export interface HeldLock {
  /** Throws when the lock was lost (taken over as stale): the caller must not write then. */
  assertHeld(): void;
}

/**
 * In-process queue per locked file: proper-lockfile refuses a second lock from the same
 * process like any other, so without it concurrent calls in one process would spin on
 * retries against each other.
 */
const queues = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` while holding a cross-process lock on `file` (a `<file>.lock` directory, as
 * proper-lockfile makes it). `onFsError` maps errors from creating the lock (a read-only
 * store, typically).
 */
export async function withFileLock<T>(
  file: string,
  fn: (held: HeldLock) => Promise<T>,
  onFsError: (err: unknown) => unknown = (err) => err,
): Promise<T> {
  const previous = queues.get(file) ?? Promise.resolve();
  const run = previous.then(() => lockAndRun(file, fn, onFsError));
  const tail = run.catch(() => undefined);
  queues.set(file, tail);
  try {
    return await run;
  } finally {
    if (queues.get(file) === tail) queues.delete(file);
  }
}

async function lockAndRun<T>(
  file: string,
  fn: (held: HeldLock) => Promise<T>,
  onFsError: (err: unknown) => unknown,
): Promise<T> {
  let lost: Error | undefined;
  const release = await acquire(file, (err) => {
    lost = err;
  }, onFsError);
  const held: HeldLock = {
    assertHeld() {
      if (lost) {
        throw new KitError('LOCK_LOST', `lost the lock on ${file}: ${lost.message}`, {
          hint: 'another kit process took it over as stale (this one stalled for over 10s); retry the command',
          cause: lost,
        });
      }
    },
  };
  try {
    return await fn(held);
  } finally {
    // Releasing a compromised lock fails; there is nothing left to undo then.
    await release().catch(() => undefined);
  }
}

/** Tries to take the lock until LOCK_WAIT_MS has passed, backing off with jitter. */
async function acquire(
  file: string,
  onCompromised: (err: Error) => void,
  onFsError: (err: unknown) => unknown,
): Promise<() => Promise<void>> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      // realpath: false — the lock must not depend on index.json existing or resolving.
      return await lock(file, { stale: LOCK_STALE_MS, retries: 0, realpath: false, onCompromised });
    } catch (err) {
      if (errnoCode(err) !== 'ELOCKED') throw onFsError(err);
      if (Date.now() >= deadline) throw lockedError(file);
      await sleep(backoffMs(attempt));
    }
  }
}

function backoffMs(attempt: number): number {
  const base = Math.min(5 * 1.5 ** attempt, 200);
  return base * (0.5 + Math.random());
}

function lockedError(file: string): KitError {
  return new KitError('STORE_LOCKED', `timed out after ${LOCK_WAIT_MS / 1000}s waiting for the lock on ${file}`, {
    hint: `another kit process is updating the store; if none is running, remove ${file}.lock`,
    exitCode: ExitCode.conflict,
  });
}
