import { randomUUID } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Digest } from '../oci/digest.js';
import { isDigest } from '../oci/digest.js';

/**
 * The digests of project files kit has already hashed, keyed by what the file system says about
 * them (device, inode, size, and mtime and ctime to the nanosecond), as git's index does: a
 * re-pack of unchanged weights reads none of them. Any write to a file, a chmod, a rename over
 * it or a restore with an old mtime changes its ctime or inode, and the entry no longer applies.
 *
 * A file changed within the same clock tick as it was hashed could keep its stat (git's "racy"
 * case), so files modified (or whose metadata changed) in the second before hashing are not remembered.
 * The cache is advisory: lost or corrupt, it is rebuilt; two packs saving at once lose entries,
 * never correctness.
 */

/** File times are kept with a coarse clock (a few ms): a second is a wide margin. */
const RACY_NS = 1_000_000_000n;
const MAX_ENTRIES = 20_000;

interface Entry {
  key: string;
  digest: Digest;
  size: number;
  at: number;
}

function keyOf(path: string, st: BigIntStats): string {
  return [resolve(path), st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs].join('\0');
}

export class FileDigestCache {
  private readonly entries = new Map<string, Entry>();
  private dirty = false;

  private constructor(private readonly file: string) {}

  /** The cache kept beside a store folder (`<KIT_HOME>/cache/file-digests.json`). */
  static async besideStore(storeRoot: string): Promise<FileDigestCache> {
    const cache = new FileDigestCache(join(dirname(storeRoot), 'cache', 'file-digests.json'));
    try {
      const doc = JSON.parse(await readFile(cache.file, 'utf8')) as { entries?: unknown };
      for (const e of Array.isArray(doc.entries) ? (doc.entries as Entry[]) : []) {
        if (typeof e?.key === 'string' && isDigest(String(e.digest)) && Number.isSafeInteger(e.size)) cache.entries.set(e.key, e);
      }
    } catch {
      // missing or unreadable: start empty
    }
    return cache;
  }

  /** The digest of `path` if it was hashed before and nothing about it changed since; and its stat. */
  async lookup(path: string): Promise<{ st: BigIntStats; known?: { digest: Digest; size: number } }> {
    const st = await stat(path, { bigint: true });
    const e = this.entries.get(keyOf(path, st));
    return e && BigInt(e.size) === st.size ? { st, known: { digest: e.digest, size: e.size } } : { st };
  }

  /** Remembers a digest computed from `path` while it had stat `st` (taken before reading). */
  remember(path: string, st: BigIntStats, digest: Digest, size: number): void {
    const now = BigInt(Date.now()) * 1_000_000n;
    if (now - st.mtimeNs < RACY_NS || now - st.ctimeNs < RACY_NS) return;
    this.entries.set(keyOf(path, st), { key: keyOf(path, st), digest, size, at: Date.now() });
    this.dirty = true;
  }

  /** Writes the cache (atomically) when it learned something; failures are ignored. */
  async save(): Promise<void> {
    if (!this.dirty) return;
    const kept = [...this.entries.values()].sort((a, b) => b.at - a.at).slice(0, MAX_ENTRIES);
    const tmp = `${this.file}.${randomUUID()}.tmp`;
    try {
      await mkdir(dirname(this.file), { recursive: true });
      await writeFile(tmp, JSON.stringify({ version: 1, entries: kept }));
      await rename(tmp, this.file);
      this.dirty = false;
    } catch {
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}
