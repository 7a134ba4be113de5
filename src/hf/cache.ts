/**
 * Where an import keeps what it downloads, and how it reads huggingface_hub's own cache.
 *
 * kit's download area, one folder per repository and commit (a commit never changes, so what is
 * there stays valid until the import succeeds and removes it):
 *
 *   $KIT_HOME/hf-cache/{models|datasets}/<org>/<name>/
 *     refs/<revision, URL-encoded>     the commit a branch or tag pointed at (for HF_HUB_OFFLINE)
 *     <commit>/info.json               what the API said (card data), for HF_HUB_OFFLINE
 *     <commit>/tree.json               the file listing at the commit
 *     <commit>/files/<path>            verified files (renamed in only after verification)
 *     <commit>/partial/<path>.part     downloads in progress: a killed import resumes from here
 *     <commit>/partial/<path>.part.lock  the pid of the process writing it
 *
 * huggingface_hub's cache ($HF_HUB_CACHE, default $HF_HOME/hub) is only ever read:
 *   models--<org>--<name>/refs/<revision>            commit id
 *   models--<org>--<name>/blobs/<etag>               content; etag = sha256 (LFS) or git sha1
 *   models--<org>--<name>/snapshots/<commit>/<path>  symlinks to ../../blobs/<etag>
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readFile, readdir, readlink, rename, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { errnoCode } from '../errors.js';
import { kitHome } from '../store/paths.js';
import type { TreeFile } from './api.js';
import type { RepoSpec } from './repo.js';

export interface CommitDirs {
  root: string;
  files: string;
  partial: string;
}

export function repoCacheDir(spec: Pick<RepoSpec, 'type' | 'id'>, home = kitHome()): string {
  return join(home, 'hf-cache', `${spec.type}s`, ...spec.id.split('/'));
}

export function commitDirs(spec: Pick<RepoSpec, 'type' | 'id'>, commit: string, home = kitHome()): CommitDirs {
  const root = join(repoCacheDir(spec, home), commit);
  return { root, files: join(root, 'files'), partial: join(root, 'partial') };
}

/** Write a small file atomically (temporary name, then rename). */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, text, { mode: 0o644 });
  await rename(tmp, path);
}

export async function readJsonFile(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

export async function saveRef(spec: RepoSpec, revision: string, commit: string): Promise<void> {
  await writeFileAtomic(join(repoCacheDir(spec), 'refs', encodeURIComponent(revision)), commit);
}

export async function readRef(spec: RepoSpec, revision: string): Promise<string | undefined> {
  try {
    const v = (await readFile(join(repoCacheDir(spec), 'refs', encodeURIComponent(revision)), 'utf8')).trim();
    return /^[0-9a-f]{40}$/.test(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The hash a file's content must have: sha256 for LFS files, the git blob sha1 otherwise. */
export function expectedDigest(file: TreeFile): { algorithm: 'sha256' | 'git-sha1'; hex: string } {
  return file.lfs ? { algorithm: 'sha256', hex: file.lfs.oid } : { algorithm: 'git-sha1', hex: file.oid };
}

/** A hash primed for `file`: git blob ids hash `blob <size>\0` before the content. */
export function newHasher(file: TreeFile): Hash {
  if (file.lfs) return createHash('sha256');
  return createHash('sha1').update(`blob ${file.size}\0`);
}

/** Feed the first `length` bytes of `path` into `hash`. */
export async function hashFilePrefix(path: string, length: number, hash: Hash): Promise<void> {
  if (length <= 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1, highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
}

/** Does the file at `path` have exactly the size and content `file` describes? */
export async function fileMatches(path: string, file: TreeFile): Promise<boolean> {
  try {
    const st = await stat(path);
    if (!st.isFile() || st.size !== file.size) return false;
  } catch {
    return false;
  }
  const h = newHasher(file);
  await hashFilePrefix(path, file.size, h);
  return h.digest('hex') === expectedDigest(file).hex;
}

// ---- huggingface_hub's cache (read only) ------------------------------------------------------

export function hfRepoFolder(hfHubCache: string, spec: Pick<RepoSpec, 'type' | 'id'>): string {
  return join(hfHubCache, `${spec.type}s--${spec.id.split('/').join('--')}`);
}

/** A blob of huggingface_hub's cache that should hold `file`, if one is there with its size. */
export async function hfCachedBlob(hfHubCache: string, spec: RepoSpec, file: TreeFile): Promise<string | undefined> {
  const blob = join(hfRepoFolder(hfHubCache, spec), 'blobs', expectedDigest(file).hex);
  try {
    const st = await stat(blob);
    return st.isFile() && st.size === file.size ? blob : undefined;
  } catch {
    return undefined;
  }
}

/** The commit huggingface_hub recorded for a revision (`refs/main`, `refs/refs/pr/1`). */
export async function hfCachedRef(hfHubCache: string, spec: RepoSpec, revision: string): Promise<string | undefined> {
  if (revision.split('/').some((s) => s === '..' || s === '')) return undefined;
  try {
    const v = (await readFile(join(hfRepoFolder(hfHubCache, spec), 'refs', revision), 'utf8')).trim();
    return /^[0-9a-f]{40}$/.test(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The files of a huggingface_hub snapshot, as a listing: each snapshot entry is a symlink to
 * `../../blobs/<etag>`, and the etag names the content hash (64 hex: sha256 of an LFS file, 40 hex:
 * git blob sha1), so the files can be verified like downloads. Entries whose hash cannot be known
 * are left out.
 */
export async function hfSnapshotListing(hfHubCache: string, spec: RepoSpec, commit: string): Promise<Array<TreeFile & { blob: string }> | undefined> {
  const root = join(hfRepoFolder(hfHubCache, spec), 'snapshots', commit);
  try {
    if (!(await stat(root)).isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  const out: Array<TreeFile & { blob: string }> = [];
  const visit = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(root, rel), { withFileTypes: true })) {
      const childRel = rel === '' ? e.name : `${rel}/${e.name}`;
      const abs = join(root, childRel);
      if (e.isDirectory()) {
        await visit(childRel);
        continue;
      }
      if (!e.isSymbolicLink()) continue;
      const etag = basename(await readlink(abs));
      const blob = join(hfRepoFolder(hfHubCache, spec), 'blobs', etag);
      let size: number;
      try {
        const st = await lstat(blob);
        if (!st.isFile()) continue;
        size = st.size;
      } catch {
        continue; // a dangling link: the blob is gone
      }
      if (/^[0-9a-f]{64}$/.test(etag)) out.push({ path: childRel, size, oid: '0'.repeat(40), lfs: { oid: etag, size }, blob });
      else if (/^[0-9a-f]{40}$/.test(etag)) out.push({ path: childRel, size, oid: etag, blob });
    }
  };
  await visit('');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
