import { lstat, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors.js';
import { ownerTag, processAlive, readLockOwner, tempName, type OwnerState } from './pid-lock.js';

export { tempName };

/**
 * What lies in the store's `ingest/` folder, and whether it may go. Shared by `kit store
 * verify` (which reports it) and `kit store gc` (which removes what is stale).
 *
 *   <pid>-<owner>-<uuid>.tmp   a blob or index.json being written by process <pid>; <owner>
 *                              names the pid namespace (or host), so that a process only
 *                              judges the liveness of pids it can see. Useless once its
 *                              writer is gone.
 *   <hex>.partial              an interrupted download of blob sha256:<hex>: the next pull of
 *                              that blob continues from its length (a Range request).
 *   <hex>.partial.ranges       the journal of a download in ranges (ranged-ingest.ts): how many
 *                              bytes from the start <hex>.partial holds; goes with it.
 *   <hex>.partial.lock         the pid (and namespace tag) of the process downloading into <hex>.partial.
 *   anything else              another writer's file; kept while `<name>.lock` names a live
 *                              process, else stale after the grace period. Folders are left alone.
 *
 * And `uploads/<registry>/<repository>/<hex>.json` (store/upload-sessions.ts): the registry
 * upload session of an interrupted push, which the next push of that blob continues; with its
 * pid lock `<hex>.json.lock` and temp files `.<random>.tmp`.
 */

export type IngestKind = 'temp' | 'partial' | 'lock' | 'upload' | 'other';

/** active: a running process owns it. dead: its owner is gone. unknown: cannot tell (another host or namespace, or no owner recorded). */
export type { OwnerState };

export interface IngestEntry {
  name: string;
  path: string;
  kind: IngestKind;
  bytes: number;
  /** Last write. */
  mtimeMs: number;
  /** The owning process, when recorded. */
  pid?: number;
  owner: OwnerState;
  directory: boolean;
}

/** How long `kit store gc` leaves young unreferenced blobs and ingest files alone by default. */
export const DEFAULT_GC_GRACE_MS = 10 * 60 * 1000;

const TEMP_NAME = /^(\d+)-([a-z0-9]+)-[0-9a-f-]{36}\.tmp$/;
/** Names written before the owner tag existed: `<pid>-<uuid>.tmp`. */
const LEGACY_TEMP_NAME = /^(\d+)-[0-9a-f]{8}-[0-9a-f-]{27}\.tmp$/;
const PARTIAL_NAME = /^[a-f0-9]{64}\.partial$/;
const JOURNAL_NAME = /^([a-f0-9]{64}\.partial)\.ranges$/;


/** Owner state of a temp file name, from the pid and namespace tag it carries. */
export function tempOwner(name: string): { pid?: number; owner: OwnerState } {
  const m = TEMP_NAME.exec(name);
  if (m) {
    const pid = Number(m[1]);
    if (m[2] !== ownerTag()) return { pid, owner: 'unknown' };
    return { pid, owner: processAlive(pid) ? 'active' : 'dead' };
  }
  const legacy = LEGACY_TEMP_NAME.exec(name);
  if (legacy) return { pid: Number(legacy[1]), owner: 'unknown' };
  return { owner: 'unknown' };
}

const lockOwner = readLockOwner;

/** Every entry of the ingest folder, classified. A missing folder is empty. */
export async function inspectIngest(dir: string): Promise<IngestEntry[]> {
  const names = await readdir(dir).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return [] as string[];
    throw err;
  });
  const present = new Set(names);
  const out: IngestEntry[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    const st = await lstat(path).catch(() => undefined);
    if (!st) continue; // gone meanwhile: its writer finished
    const base = { name, path, bytes: st.isFile() ? st.size : 0, mtimeMs: st.mtimeMs, directory: st.isDirectory() };
    if (st.isDirectory()) {
      out.push({ ...base, kind: 'other', owner: 'unknown' });
    } else if (name.endsWith('.tmp') && (TEMP_NAME.test(name) || LEGACY_TEMP_NAME.test(name))) {
      out.push({ ...base, kind: 'temp', ...tempOwner(name) });
    } else if (PARTIAL_NAME.test(name)) {
      const lock = present.has(`${name}.lock`) ? await lockOwner(join(dir, `${name}.lock`)) : { owner: 'dead' as const };
      out.push({ ...base, kind: 'partial', ...lock });
    } else if (JOURNAL_NAME.test(name)) {
      const partial = JOURNAL_NAME.exec(name)![1]!;
      const lock = present.has(`${partial}.lock`) ? await lockOwner(join(dir, `${partial}.lock`)) : { owner: 'dead' as const };
      out.push({ ...base, kind: 'partial', ...lock });
    } else if (name.endsWith('.lock')) {
      out.push({ ...base, kind: 'lock', ...(await lockOwner(path)) });
    } else {
      const lock = present.has(`${name}.lock`) ? await lockOwner(join(dir, `${name}.lock`)) : { owner: 'unknown' as const };
      out.push({ ...base, kind: 'other', ...lock });
    }
  }
  return out;
}

/** Every file below the uploads folder (upload sessions of interrupted pushes), classified. */
export async function inspectUploads(root: string): Promise<IngestEntry[]> {
  const out: IngestEntry[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    const present = new Set(entries.map((e) => e.name));
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        await walk(path);
        continue;
      }
      const st = await lstat(path).catch(() => undefined);
      if (!st) continue;
      const base = { name: e.name, path, bytes: st.size, mtimeMs: st.mtimeMs, directory: false, kind: 'upload' as const };
      if (e.name.endsWith('.lock')) out.push({ ...base, ...(await lockOwner(path)) });
      else if (e.name.endsWith('.json')) {
        out.push({ ...base, ...(present.has(`${e.name}.lock`) ? await lockOwner(join(dir, `${e.name}.lock`)) : { owner: 'dead' as const }) });
      } else out.push({ ...base, ...tempOwner(e.name) });
    }
  };
  await walk(root);
  return out;
}

/** Why `kit store gc` keeps an ingest entry, or undefined when it may be removed. */
export function ingestKeepReason(e: IngestEntry, opts: { graceMs: number; now: boolean; at: number }): string | undefined {
  if (e.directory) return 'a folder (not kit ingest data)';
  if (e.owner === 'active') return `in use by process ${e.pid ?? '?'}`;
  // A temp file or lock whose owner is gone is useless: no process can ever finish it.
  if ((e.kind === 'temp' || e.kind === 'lock' || (e.kind === 'upload' && /\.(lock|tmp)$/.test(e.name))) && e.owner === 'dead') return undefined;
  if (opts.now) return undefined;
  if (opts.at - e.mtimeMs < opts.graceMs) {
    if (e.kind === 'partial') return 'an interrupted download younger than the grace period (the next pull resumes it)';
    if (e.kind === 'upload') return 'an interrupted upload younger than the grace period (the next push continues it)';
    return 'younger than the grace period';
  }
  return undefined;
}

/** Human description of an ingest entry, for `kit store verify`. */
export function describeIngest(e: IngestEntry): string {
  switch (e.kind) {
    case 'partial':
      return e.owner === 'active'
        ? `a download in progress (process ${e.pid})`
        : 'an interrupted download; the next pull of this blob resumes it, `kit store gc` removes it once stale';
    case 'temp':
      if (e.owner === 'active') return `a write in progress (process ${e.pid})`;
      if (e.owner === 'dead') return `left by process ${e.pid}, which is gone; the next write to the store or \`kit store gc\` removes it`;
      return 'left by a process kit cannot check (another host or namespace); `kit store gc` removes it once stale';
    case 'lock':
      return e.owner === 'active' ? `held by process ${e.pid}` : 'a lock whose process is gone; taken over by the next pull, removed by `kit store gc`';
    case 'upload':
      if (e.owner === 'active') return `an upload in progress (process ${e.pid})`;
      return e.name.endsWith('.json')
        ? 'the upload session of an interrupted push; the next push of this blob continues it, `kit store gc` removes it once stale'
        : 'left by an interrupted push; `kit store gc` removes it';
    default:
      return e.directory ? 'a folder kit does not manage' : 'an unknown file; `kit store gc` removes it once stale';
  }
}
