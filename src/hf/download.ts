/**
 * Downloading the files of one commit: in parallel, each verified, each resumable.
 *
 * A file is written to `partial/<path>.part` as it arrives and renamed into `files/<path>` only
 * once its size and hash match the listing (sha256 = `lfs.oid` for LFS files, git blob sha1 = `oid`
 * for the others). A connection that breaks, or a process that is killed, leaves the partial
 * file; the next attempt (in this process or the next `kit import`) hashes what is there and asks
 * for the rest with `Range: bytes=<have>-`. A server that answers such a request with 200 sends
 * the whole file again: the partial file is truncated and the download starts over. A partial
 * file is locked by the pid of its writer, so two imports never write the same file.
 */
import type { Hash } from 'node:crypto';
import { link, mkdir, open, rename, rm, stat, truncate, copyFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ExitCode, KitError, errnoCode } from '../errors.js';
import { tryPidLock } from '../store/pid-lock.js';
import type { TreeFile } from './api.js';
import { expectedDigest, fileMatches, hashFilePrefix, newHasher, type CommitDirs } from './cache.js';
import { displayUrl, hubError, isTransientError, type ErrorContext, type HubHttp } from './http.js';

export type DownloadEvent =
  | { type: 'file-start'; path: string; size: number; offset: number }
  | { type: 'file-progress'; path: string; bytes: number }
  | { type: 'file-restart'; path: string; reason: string }
  | { type: 'file-done'; path: string; size: number; how: 'downloaded' | 'cached' | 'linked'; resumedFrom?: number };

export interface DownloadOptions {
  http: HubHttp;
  dirs: CommitDirs;
  /** The download URL of a file. */
  url: (file: TreeFile) => URL;
  /** Error context for a file (repository, revision). */
  context: (file: TreeFile) => ErrorContext;
  /** A verified copy elsewhere on this machine (huggingface_hub's cache), linked instead of downloaded. */
  localCopy?: (file: TreeFile) => Promise<string | undefined>;
  concurrency?: number;
  /** Attempts per file when the connection breaks mid-way (default 5). */
  attempts?: number;
  onEvent?: (e: DownloadEvent) => void;
  signal?: AbortSignal;
}

export function finalPath(dirs: CommitDirs, file: TreeFile): string {
  return join(dirs.files, ...file.path.split('/'));
}

function partialPath(dirs: CommitDirs, file: TreeFile): string {
  return join(dirs.partial, ...file.path.split('/')) + '.part';
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    const st = await stat(path);
    return st.isFile() ? st.size : undefined;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** `bytes <start>-<end>/<total>` */
function parseContentRange(v: string | undefined): { start: number; end: number; total?: number } | undefined {
  const m = v ? /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(v.trim()) : null;
  if (!m) return undefined;
  const r: { start: number; end: number; total?: number } = { start: Number(m[1]), end: Number(m[2]) };
  if (m[3] !== '*') r.total = Number(m[3]);
  return r;
}

/** Link a file into place (same filesystem), or copy it when links are not possible. */
export async function linkOrCopy(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  await rm(to, { force: true });
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
  }
}

class Restart extends Error {}

/** Download one file into `files/`, resuming a partial download; returns how it got there. */
export async function downloadFile(file: TreeFile, opts: DownloadOptions): Promise<'downloaded' | 'cached' | 'linked'> {
  const final = finalPath(opts.dirs, file);
  if ((await sizeOf(final)) === file.size) {
    opts.onEvent?.({ type: 'file-done', path: file.path, size: file.size, how: 'cached' });
    return 'cached';
  }
  if (opts.localCopy) {
    const copy = await opts.localCopy(file);
    if (copy && (await fileMatches(copy, file))) {
      await linkOrCopy(copy, final);
      opts.onEvent?.({ type: 'file-done', path: file.path, size: file.size, how: 'linked' });
      return 'linked';
    }
  }

  const partial = partialPath(opts.dirs, file);
  await mkdir(dirname(partial), { recursive: true });
  const unlock = await tryPidLock(`${partial}.lock`);
  if (!unlock) {
    throw new KitError('HF_DOWNLOAD_BUSY', `another kit process is downloading ${file.path} into ${opts.dirs.root}`, {
      hint: 'wait for the other `kit import` of this repository to finish, or stop it',
      exitCode: ExitCode.conflict,
    });
  }
  try {
    await fetchInto(file, partial, opts);
    await mkdir(dirname(final), { recursive: true });
    await rename(partial, final);
    return 'downloaded';
  } finally {
    await unlock();
  }
}

async function fetchInto(file: TreeFile, partial: string, opts: DownloadOptions): Promise<void> {
  const attempts = Math.max(1, opts.attempts ?? 5);
  const url = opts.url(file);
  let resumedFrom: number | undefined;
  let started = false;
  for (let attempt = 1; ; attempt++) {
    let have = (await sizeOf(partial)) ?? 0;
    if (have > file.size) {
      await truncate(partial, 0);
      have = 0;
    }
    let hash = newHasher(file);
    await hashFilePrefix(partial, have, hash);
    if (!started) {
      started = true;
      if (have > 0) resumedFrom = have;
      opts.onEvent?.({ type: 'file-start', path: file.path, size: file.size, offset: have });
    }
    let received = have;
    try {
      if (have < file.size) ({ size: received, hash } = await fetchRange(file, url, partial, have, hash, opts));
    } catch (err) {
      if (err instanceof Restart) {
        opts.onEvent?.({ type: 'file-restart', path: file.path, reason: err.message });
        if (attempt >= attempts) throw brokenDownload(file, url, err.message, attempt);
        continue;
      }
      if (!isTransientError(err) || attempt >= attempts || opts.signal?.aborted) {
        if (err instanceof KitError) throw err;
        if (isTransientError(err)) throw brokenDownload(file, url, (err as Error).message, attempt);
        throw err;
      }
      continue; // the connection broke: resume from what arrived
    }
    if (received < file.size) {
      if (attempt >= attempts) throw brokenDownload(file, url, `the download stopped at ${received} of ${file.size} bytes`, attempt);
      continue;
    }
    const digest = hash.digest('hex');
    const want = expectedDigest(file);
    if (digest !== want.hex) {
      await rm(partial, { force: true });
      throw new KitError(
        'HF_DIGEST_MISMATCH',
        `${file.path}: the downloaded bytes do not match the Hub's listing (${want.algorithm === 'sha256' ? 'sha256, from lfs.oid' : 'git blob sha1, from oid'}: expected ${want.hex}, got ${digest}); the file was discarded`,
        { hint: 'the CDN, a proxy or a mirror served wrong content; run the import again, and report it if it persists' },
      );
    }
    opts.onEvent?.({ type: 'file-done', path: file.path, size: file.size, how: 'downloaded', ...(resumedFrom !== undefined ? { resumedFrom } : {}) });
    return;
  }
}

function brokenDownload(file: TreeFile, url: URL, why: string, attempts: number): KitError {
  return new KitError('HF_DOWNLOAD_FAILED', `downloading ${file.path} failed after ${attempts} attempt${attempts === 1 ? '' : 's'} (${displayUrl(url)}): ${why}`, {
    hint: 'run the import again: what arrived is kept and the download resumes',
  });
}

/** One request for the bytes from `have` on; returns the partial file's size afterwards and the hash of its content. */
async function fetchRange(file: TreeFile, url: URL, partial: string, have: number, hash: Hash, opts: DownloadOptions): Promise<{ size: number; hash: Hash }> {
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (have > 0) headers['range'] = `bytes=${have}-`;
  const res = await opts.http.request(url, { headers, ...(opts.signal ? { signal: opts.signal } : {}) });
  let offset = have;
  if (res.status === 206) {
    const cr = parseContentRange(res.headers['content-range']);
    if (!cr || cr.start !== have || (cr.total !== undefined && cr.total !== file.size)) {
      await res.dump();
      await truncate(partial, 0);
      throw new Restart(`the server answered a different range (${res.headers['content-range'] ?? 'none'}) than asked (bytes=${have}-): starting over`);
    }
  } else if (res.status === 200) {
    if (have > 0) {
      // The server ignored the Range header and sends everything: start over.
      offset = 0;
      hash = newHasher(file);
      opts.onEvent?.({ type: 'file-restart', path: file.path, reason: 'the server sent the whole file (200) instead of the range asked for: starting over' });
    }
  } else if (res.status === 416) {
    await res.dump();
    await truncate(partial, 0);
    throw new Restart('the server refused the range (416): starting over');
  } else if (res.url.origin !== opts.http.endpoint.origin && [401, 403, 404, 410].includes(res.status)) {
    // The storage host behind the redirect refused a signed link (expired, say): the next
    // attempt asks the Hub again and gets a fresh one.
    await res.dump();
    throw new Restart(`${res.url.host} answered HTTP ${res.status}: asking the Hub for a new link`);
  } else {
    throw await hubError(res, opts.context(file), opts.http.hasToken);
  }
  const length = res.headers['content-length'];
  if (length !== undefined && /^\d+$/.test(length) && offset + Number(length) !== file.size) {
    await res.dump();
    throw new KitError('HF_SIZE_MISMATCH', `${file.path}: the server announces ${offset + Number(length)} bytes, the listing says ${file.size}`, {
      hint: 'the CDN, a proxy or a mirror served something else; run the import again, and report it if it persists',
    });
  }

  const fh = await open(partial, offset === 0 ? 'w' : 'a');
  try {
    for await (const chunk of res.body) {
      const buf = chunk as Buffer;
      if (offset + buf.length > file.size) {
        res.body.destroy();
        await fh.close().catch(() => undefined);
        await rm(partial, { force: true });
        throw new KitError('HF_SIZE_MISMATCH', `${file.path}: the server sent more than the ${file.size} bytes the listing gives`, {
          hint: 'the CDN, a proxy or a mirror served something else; run the import again, and report it if it persists',
        });
      }
      await fh.write(buf);
      hash.update(buf);
      offset += buf.length;
      opts.onEvent?.({ type: 'file-progress', path: file.path, bytes: buf.length });
    }
    if (offset === file.size) await fh.sync();
  } finally {
    await fh.close().catch(() => undefined);
  }
  // After a 200 the hash is a new one (what was in the partial file does not count).
  return { size: offset, hash };
}

/**
 * Download `files` with `concurrency` at once. The first failure stops the others (requests in
 * flight are aborted; what they received stays in their partial files for the next run) and is
 * thrown.
 */
export async function downloadAll(files: TreeFile[], opts: DownloadOptions): Promise<Map<string, 'downloaded' | 'cached' | 'linked'>> {
  const results = new Map<string, 'downloaded' | 'cached' | 'linked'>();
  const queue = [...files];
  const stop = new AbortController();
  const onOuterAbort = (): void => stop.abort(opts.signal?.reason);
  if (opts.signal?.aborted) stop.abort(opts.signal.reason);
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const fileOpts: DownloadOptions = { ...opts, signal: stop.signal };
  let failure: unknown;
  const worker = async (): Promise<void> => {
    for (;;) {
      if (failure !== undefined || stop.signal.aborted) return;
      const file = queue.shift();
      if (!file) return;
      try {
        results.set(file.path, await downloadFile(file, fileOpts));
      } catch (err) {
        if (failure === undefined) {
          failure = err;
          stop.abort(err);
        }
      }
    }
  };
  try {
    const n = Math.max(1, Math.min(opts.concurrency ?? 8, files.length));
    await Promise.all(Array.from({ length: n }, worker));
  } finally {
    opts.signal?.removeEventListener('abort', onOuterAbort);
  }
  if (failure !== undefined) throw failure;
  if (stop.signal.aborted) throw stop.signal.reason;
  return results;
}
