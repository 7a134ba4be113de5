import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { errnoCode } from '../errors.js';
import { isDigest } from '../oci/digest.js';
import { fsyncDir, isNotFound } from './fs-util.js';
import { tryPidLock } from './pid-lock.js';

/**
 * Open chunked uploads, kept in the local store so that `kit push` killed half-way continues the
 * registry's upload session on the next run instead of sending the blob again from byte 0:
 *
 *   <store>/uploads/<registry host>/<repository>/<digest hex>.json
 *
 * One small JSON file per session, replaced atomically (temp file, fsync, rename) after every
 * chunk the registry accepted, and removed once the blob is complete. The record is a hint, not
 * the truth: the registry is asked how much it holds (GET on the upload URL) before anything is
 * sent, so a stale or damaged record costs one request, never correctness. A record that does not
 * parse, or names another blob, is ignored.
 *
 * Not part of the OCI image layout: other tools never look here, and `kit store gc` may delete
 * the folder at any time (the next push then opens a new session).
 */

export interface UploadSessionKey {
  /** host[:port] as in references. */
  registry: string;
  /** Repository path inside the registry, e.g. `team/model`. */
  repository: string;
  /** `sha256:<hex>` of the blob being uploaded. */
  digest: string;
}

export interface UploadSessionRecord extends UploadSessionKey {
  version: 1;
  /** Size of the whole blob. */
  size: number;
  /** The upload URL to continue with: the Location of the last accepted request. */
  location: string;
  /** Bytes the registry acknowledged when the record was written. */
  offset: number;
  /** When the session was opened / last advanced (ISO 8601). */
  createdAt: string;
  updatedAt: string;
}

/** Where upload sessions are remembered; the registry code depends on this interface only. */
export interface UploadSessionStore {
  load(key: UploadSessionKey): Promise<UploadSessionRecord | undefined>;
  save(record: UploadSessionRecord): Promise<void>;
  remove(key: UploadSessionKey): Promise<void>;
  /**
   * Claims the session for this process (two pushes of one blob must not write into one
   * session): a release function, or undefined when a live process holds it.
   */
  lock?(key: UploadSessionKey): Promise<(() => Promise<void>) | undefined>;
}

const HEX = /^sha256:([a-f0-9]{64})$/;
/** Records are tiny; anything larger is not one of ours. */
const MAX_RECORD_BYTES = 64 * 1024;

/** A path component from a registry host: `127.0.0.1:5000` -> `127.0.0.1_5000`. */
function hostComponent(registry: string): string {
  const c = registry.toLowerCase().replace(/[^a-z0-9.-]/g, '_');
  return c === '' || c === '.' || c === '..' ? '_' : c;
}

/**
 * Repository names follow the reference grammar (lower-case components of [a-z0-9._-] joined by
 * `/`); anything else is mapped so that it can never climb out of the uploads folder.
 */
function repositoryComponents(repository: string): string[] {
  return repository.split('/').map((p) => {
    const c = p.replace(/[^a-z0-9._-]/g, '_');
    return c === '' || c === '.' || c === '..' ? '_' : c;
  });
}

export class FileUploadSessions implements UploadSessionStore {
  /** `root` is the uploads folder, normally `<store>/uploads`. */
  constructor(readonly root: string) {}

  /** Sessions of the local store at `storeRoot`. */
  static forStore(storeRoot: string): FileUploadSessions {
    return new FileUploadSessions(join(storeRoot, 'uploads'));
  }

  pathOf(key: UploadSessionKey): string | undefined {
    const m = HEX.exec(key.digest);
    if (!m) return undefined;
    const path = join(this.root, hostComponent(key.registry), ...repositoryComponents(key.repository), `${m[1]}.json`);
    // Belt and braces: the mapping above cannot produce a path outside root.
    const back = relative(this.root, path);
    if (back.startsWith('..') || back.split(sep).includes('..')) return undefined;
    return path;
  }

  async load(key: UploadSessionKey): Promise<UploadSessionRecord | undefined> {
    const path = this.pathOf(key);
    if (!path) return undefined;
    let text: string;
    try {
      const buf = await readFile(path);
      if (buf.length > MAX_RECORD_BYTES) return undefined;
      text = buf.toString('utf8');
    } catch {
      return undefined; // missing or unreadable: start a new session
    }
    let v: Partial<UploadSessionRecord>;
    try {
      v = JSON.parse(text) as Partial<UploadSessionRecord>;
    } catch {
      return undefined;
    }
    if (
      v === null ||
      typeof v !== 'object' ||
      v.version !== 1 ||
      v.registry !== key.registry ||
      v.repository !== key.repository ||
      v.digest !== key.digest ||
      !isDigest(String(v.digest)) ||
      typeof v.location !== 'string' ||
      !/^https?:\/\//i.test(v.location) ||
      !Number.isSafeInteger(v.size) ||
      !Number.isSafeInteger(v.offset) ||
      (v.offset as number) < 0 ||
      (v.offset as number) > (v.size as number)
    ) {
      return undefined;
    }
    return v as UploadSessionRecord;
  }

  async save(record: UploadSessionRecord): Promise<void> {
    const path = this.pathOf(record);
    if (!path) return;
    const dir = dirname(path);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const temp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
    try {
      // 0600: an upload URL may carry a signature (pre-signed storage URLs).
      const fh = await open(temp, 'wx', 0o600);
      try {
        await fh.writeFile(JSON.stringify(record), 'utf8');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(temp, path);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    await fsyncDir(dir).catch(() => undefined);
  }

  async remove(key: UploadSessionKey): Promise<void> {
    const path = this.pathOf(key);
    if (!path) return;
    try {
      await rm(path, { force: true });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    await this.tidy(dirname(path));
  }

  async lock(key: UploadSessionKey): Promise<(() => Promise<void>) | undefined> {
    const path = this.pathOf(key);
    if (!path) return undefined;
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const release = await tryPidLock(`${path}.lock`);
    if (!release) return undefined;
    return async () => {
      await release();
      await this.tidy(dirname(path));
    };
  }

  /** Removes folders left empty, up to (not including) the uploads folder. */
  private async tidy(from: string): Promise<void> {
    for (let d = from; d.length > this.root.length && d.startsWith(this.root + sep); d = dirname(d)) {
      try {
        if ((await readdir(d)).length > 0) return;
        await rmdir(d);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') return;
      }
    }
  }
}
