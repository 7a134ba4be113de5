/**
 * `kit import`: a Hugging Face Hub repository -> an OCI artifact, in one pass.
 *
 *  1. resolve the revision (branch, tag or commit) to its commit id, then use only that commit:
 *     a push to the Hub during the import cannot mix two revisions;
 *  2. list the files at the commit (all pages), keep those --include / --exclude select (hidden
 *     files such as .gitattributes are never packed, as with `kit init`);
 *  3. download them in parallel, verified and resumable (download.ts), into kit's hf-cache;
 *     blobs already in huggingface_hub's own cache are linked instead of downloaded;
 *  4. write a Kitfile the way `kit init` does, enriched from the model card, config.json and the
 *     safetensors headers, recording the repository and commit;
 *  5. pack it into the local store, or with --push stream it to a registry; the manifest carries
 *     `org.opencontainers.image.source` / `.revision`, the ModelPack config `sourceURL` /
 *     `revision` (and `family`, `docURL`).
 *
 * The downloads are removed once the artifact is packed (the store holds the bytes); a failed or
 * killed import leaves them, and the next run resumes. With HF_HUB_OFFLINE nothing touches the
 * network: the files must be in kit's hf-cache or in huggingface_hub's cache.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pack, StoreSink, type PackEvent, type PackResult } from '../artifact/pack.js';
import { ExitCode, KitError } from '../errors.js';
import { enrichKitfile } from '../kitfile/enrich.js';
import { generateKitfile } from '../kitfile/init.js';
import { serializeKitfile } from '../kitfile/load.js';
import type { Kitfile } from '../kitfile/schema.js';
import { Annotation } from '../oci/descriptor.js';
import { formatReference, parseReference, parseReferenceWithDefaultTag } from '../oci/reference.js';
import type { RegistrySettings } from '../registry/types.js';
import { tryPidLock } from '../store/pid-lock.js';
import type { CopyEvent } from '../transfer/copy.js';
import type { TransferSummary } from '../transfer/remote-ops.js';
import { HubApi, safeRepoPath, type RepoInfo, type TreeFile } from './api.js';
import {
  commitDirs,
  fileMatches,
  hfCachedBlob,
  hfCachedRef,
  hfSnapshotListing,
  readJsonFile,
  readRef,
  saveRef,
  writeFileAtomic,
  type CommitDirs,
} from './cache.js';
import { downloadAll, finalPath, linkOrCopy, type DownloadEvent } from './download.js';
import { pathFilter } from './glob.js';
import { HubHttp } from './http.js';
import type { ModelCard } from './model-card.js';
import { DEFAULT_ENDPOINT, hubSettings, parseRepoSpec, repoPath, type RepoSpec } from './repo.js';

export interface ImportOptions {
  /** org/name, hf://org/name, hf://datasets/org/name or a Hub URL */
  repo: string;
  revision?: string;
  /** References to tag the artifact with; default `hf.co/<org>/<name>:<commit[:12]>`. */
  tags?: string[];
  include?: string[];
  exclude?: string[];
  /** Stream the artifact to the registry of each tag instead of the local store. */
  push?: boolean;
  token?: string;
  /** Files downloaded (and blobs pushed) at once; default 8 (downloads) / 4 (push). */
  concurrency?: number;
  registry?: RegistrySettings;
  onEvent?: (e: ImportEvent) => void;
  env?: NodeJS.ProcessEnv;
  /** HTTP tuning for tests (rate-limit cap, backoff). */
  http?: { maxRateLimitWaitMs?: number; baseDelayMs?: number; maxAttempts?: number };
}

export type ImportEvent =
  | { type: 'resolved'; repository: string; revision: string; commit: string; offline: boolean }
  | { type: 'listed'; files: number; bytes: number; skipped: number }
  | DownloadEvent
  | { type: 'wait'; ms: number; reason: string }
  | { type: 'kitfile'; kitfile: Kitfile }
  | { type: 'pack'; event: PackEvent }
  | { type: 'push'; event: CopyEvent };

export interface ImportResult extends PackResult {
  repository: string;
  repoType: 'model' | 'dataset';
  revision: string;
  commit: string;
  sourceURL: string;
  files: { count: number; bytes: number; downloaded: number; cached: number; linked: number };
  kitfile: Kitfile;
  pushed?: TransferSummary[];
}

const COMMIT = /^[0-9a-f]{40}$/;

// ---- naming ------------------------------------------------------------------------------------

/** One repository component for an OCI reference: lowercase, separators as the grammar allows. */
export function referenceComponent(s: string): string {
  const out = s
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/[._-]{2,}/g, (run) => (/^-+$/.test(run) || run === '__' ? run : '-'))
    .replace(/^[._-]+|[._-]+$/g, '');
  return out === '' ? 'x' : out;
}

/**
 * The reference an import is tagged with when -t is not given:
 * `hf.co/<org>/<name>:<first 12 hex of the commit>` (`hf.co/datasets/<org>/<name>:...` for datasets),
 * lowercased to fit the OCI grammar. For another HF_ENDPOINT, its host stands in for hf.co.
 */
export function defaultImportTag(spec: Pick<RepoSpec, 'type' | 'id'>, commit: string, endpoint: string = DEFAULT_ENDPOINT): string {
  const url = new URL(endpoint);
  const host = url.origin === new URL(DEFAULT_ENDPOINT).origin ? 'hf.co' : url.host.toLowerCase();
  const parts = [...(spec.type === 'dataset' ? ['datasets'] : []), ...spec.id.split('/').map(referenceComponent)];
  const ref = `${host}/${parts.join('/')}:${commit.slice(0, 12)}`;
  try {
    return formatReference(parseReference(ref));
  } catch {
    return formatReference(parseReference(`hf.co/import/${referenceComponent(spec.id)}:${commit.slice(0, 12)}`));
  }
}

function hidden(path: string): boolean {
  return path.split('/').some((seg) => seg.startsWith('.'));
}

// ---- the listing: online or offline -------------------------------------------------------------

interface Snapshot {
  commit: string;
  files: Array<TreeFile & { blob?: string }>;
  card: ModelCard;
}

async function onlineSnapshot(api: HubApi, spec: RepoSpec, revision: string): Promise<Snapshot> {
  const info: RepoInfo = await api.repoInfo(revision);
  const dirs = commitDirs(spec, info.commit);
  await saveRef(spec, revision, info.commit);
  await writeFileAtomic(join(dirs.root, 'info.json'), JSON.stringify({ card: info.card, gated: info.gated, private: info.private }));
  const files = await api.listTree(info.commit);
  await writeFileAtomic(join(dirs.root, 'tree.json'), JSON.stringify(files));
  return { commit: info.commit, files, card: info.card };
}

function treeFromJson(value: unknown): TreeFile[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const ok = value.every(
    (f) => f && typeof f === 'object' && safeRepoPath((f as TreeFile).path) && Number.isSafeInteger((f as TreeFile).size) && typeof (f as TreeFile).oid === 'string',
  );
  return ok ? (value as TreeFile[]) : undefined;
}

async function offlineSnapshot(spec: RepoSpec, revision: string, hfHubCache: string): Promise<Snapshot> {
  const commit = COMMIT.test(revision) ? revision : ((await readRef(spec, revision)) ?? (await hfCachedRef(hfHubCache, spec, revision)));
  const notCached = (what: string): KitError =>
    new KitError('HF_OFFLINE_NOT_CACHED', `HF_HUB_OFFLINE is set and ${what}`, {
      hint: 'unset HF_HUB_OFFLINE to download, or download it first (`kit import` again, or `hf download`)',
      exitCode: ExitCode.notFound,
    });
  if (!commit) throw notCached(`the revision ${JSON.stringify(revision)} of ${repoPath(spec)} is not in kit's or huggingface_hub's cache`);
  const dirs = commitDirs(spec, commit);
  const info = (await readJsonFile(join(dirs.root, 'info.json'))) as { card?: ModelCard } | undefined;
  const card = info?.card && typeof info.card === 'object' ? info.card : {};
  const tree = treeFromJson(await readJsonFile(join(dirs.root, 'tree.json')));
  if (tree) return { commit, files: tree, card };
  const snapshot = await hfSnapshotListing(hfHubCache, spec, commit);
  if (snapshot && snapshot.length > 0) return { commit, files: snapshot, card };
  throw notCached(`no file listing of ${repoPath(spec)} at ${commit} is cached`);
}

/** Offline: every selected file from kit's cache or huggingface_hub's, verified; nothing fetched. */
async function materializeOffline(files: Array<TreeFile & { blob?: string }>, dirs: CommitDirs, spec: RepoSpec, hfHubCache: string, onEvent?: (e: ImportEvent) => void): Promise<Map<string, 'cached' | 'linked'>> {
  const out = new Map<string, 'cached' | 'linked'>();
  const missing: string[] = [];
  for (const f of files) {
    if (await fileMatchesSize(finalPath(dirs, f), f)) {
      out.set(f.path, 'cached');
      onEvent?.({ type: 'file-done', path: f.path, size: f.size, how: 'cached' });
      continue;
    }
    const blob = f.blob ?? (await hfCachedBlob(hfHubCache, spec, f));
    if (blob && (await fileMatches(blob, f))) {
      await linkOrCopy(blob, finalPath(dirs, f));
      out.set(f.path, 'linked');
      onEvent?.({ type: 'file-done', path: f.path, size: f.size, how: 'linked' });
      continue;
    }
    missing.push(f.path);
  }
  if (missing.length > 0) {
    const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, and ${missing.length - 5} more` : '');
    throw new KitError('HF_OFFLINE_NOT_CACHED', `HF_HUB_OFFLINE is set and ${missing.length} file${missing.length === 1 ? ' is' : 's are'} not downloaded: ${shown}`, {
      hint: 'unset HF_HUB_OFFLINE to download them, or narrow the import with --include / --exclude',
      exitCode: ExitCode.notFound,
    });
  }
  return out;
}

async function fileMatchesSize(path: string, f: TreeFile): Promise<boolean> {
  try {
    const st = await stat(path);
    return st.isFile() && st.size === f.size;
  } catch {
    return false;
  }
}

// ---- the import ------------------------------------------------------------------------------

/** Remove the download area of a commit unless another live import is using it. */
async function removeDownloads(dirs: CommitDirs, ownCtx: string): Promise<void> {
  let entries: string[] = [];
  try {
    entries = await readdir(dirs.root);
  } catch {
    return;
  }
  for (const e of entries) {
    if (!/^import-\d+$/.test(e) || join(dirs.root, e) === ownCtx) continue;
    // Another import's context: if its process lives, leave everything to it.
    const release = await tryPidLock(join(dirs.root, `${e}.lock`));
    if (!release) return;
    await release();
  }
  await rm(dirs.root, { recursive: true, force: true });
}

export async function importRepository(opts: ImportOptions): Promise<ImportResult> {
  const env = opts.env ?? process.env;
  const spec = parseRepoSpec(opts.repo);
  const settings = await hubSettings(opts.token !== undefined ? { token: opts.token } : {}, env);
  let endpoint = settings.endpoint;
  let token = settings.token;
  let tokenSource = settings.tokenSource;
  if (spec.origin && spec.origin !== new URL(settings.endpoint).origin) {
    // A URL naming another host: use it, but the configured token is for HF_ENDPOINT only.
    endpoint = spec.origin;
    token = opts.token;
    tokenSource = opts.token ? '--token' : undefined;
  }
  const revision = opts.revision ?? spec.revision ?? 'main';
  if (opts.push && (opts.tags ?? []).length === 0) {
    throw new KitError('TAG_REQUIRED', 'kit import --push needs -t naming the registry and repository to push to', {
      hint: 'e.g. kit import org/name -t registry.example.com/models/name:1.0 --push',
      exitCode: ExitCode.usage,
    });
  }
  for (const t of opts.tags ?? []) parseReferenceWithDefaultTag(t); // a bad -t fails before any download
  const emit = opts.onEvent;

  const http = new HubHttp({
    endpoint,
    ...(token ? { token } : {}),
    onWait: (ms, reason) => emit?.({ type: 'wait', ms, reason }),
    ...(opts.http?.maxRateLimitWaitMs !== undefined ? { maxRateLimitWaitMs: opts.http.maxRateLimitWaitMs } : {}),
    ...(opts.http?.baseDelayMs !== undefined ? { baseDelayMs: opts.http.baseDelayMs } : {}),
    ...(opts.http?.maxAttempts !== undefined ? { maxAttempts: opts.http.maxAttempts } : {}),
  });
  const api = new HubApi(http, spec, tokenSource);
  try {
    const snap = settings.offline ? await offlineSnapshot(spec, revision, settings.hfHubCache) : await onlineSnapshot(api, spec, revision);
    const { commit } = snap;
    emit?.({ type: 'resolved', repository: repoPath(spec), revision, commit, offline: settings.offline });

    const filter = pathFilter(opts.include, opts.exclude);
    const selected = snap.files.filter((f) => !hidden(f.path) && filter(f.path));
    if (selected.length === 0) {
      throw new KitError('HF_NOTHING_SELECTED', `no files of ${repoPath(spec)} at ${commit.slice(0, 12)} are selected (${snap.files.length} listed${opts.include?.length ? `; --include ${opts.include.join(' ')}` : ''}${opts.exclude?.length ? `; --exclude ${opts.exclude.join(' ')}` : ''})`, {
        hint: 'patterns match whole paths as `hf download` does: `*.safetensors`, `onnx/` (a folder), `*.md`',
        exitCode: ExitCode.usage,
      });
    }
    const totalBytes = selected.reduce((n, f) => n + f.size, 0);
    emit?.({ type: 'listed', files: selected.length, bytes: totalBytes, skipped: snap.files.length - selected.length });

    const dirs = commitDirs(spec, commit);
    const how = settings.offline
      ? await materializeOffline(selected, dirs, spec, settings.hfHubCache, emit)
      : await downloadAll(selected, {
          http,
          dirs,
          url: (f) => api.resolveUrl(commit, f.path),
          context: (f) => api.context({ revision: commit, file: f.path }),
          localCopy: (f) => hfCachedBlob(settings.hfHubCache, spec, f),
          ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
          ...(emit ? { onEvent: emit } : {}),
        });

    // The context holds exactly the selected files (links to the downloads), whatever else an
    // earlier import with other filters left in the cache.
    const ctx = join(dirs.root, `import-${process.pid}`);
    const kitfilePath = join(dirs.root, `import-${process.pid}.Kitfile`);
    const releaseCtx = await tryPidLock(`${ctx}.lock`);
    try {
      await rm(ctx, { recursive: true, force: true });
      for (const f of selected) await linkOrCopy(finalPath(dirs, f), join(ctx, ...f.path.split('/')));

      const name = spec.id.split('/').pop()!;
      const kitfile = await generateKitfile(ctx, { name, enrich: false });
      const findings = await enrichKitfile(ctx, kitfile, { extraCard: snap.card });
      const sourceURL = api.pageUrl;
      if (kitfile.model) {
        const params = kitfile.model.parameters && typeof kitfile.model.parameters === 'object' ? (kitfile.model.parameters as Record<string, unknown>) : {};
        kitfile.model.parameters = { ...params, sourceURL, revision: commit };
      }
      emit?.({ type: 'kitfile', kitfile });
      await writeFileAtomic(kitfilePath, serializeKitfile(kitfile));

      const readme = selected.some((f) => f.path.toLowerCase() === 'readme.md') ? selected.find((f) => f.path.toLowerCase() === 'readme.md')!.path : undefined;
      const packOpts = {
        contextDir: ctx,
        kitfile: kitfilePath,
        tags: opts.tags && opts.tags.length > 0 ? opts.tags : [defaultImportTag(spec, commit, endpoint)],
        format: 'modelpack' as const,
        layerFormat: 'raw' as const,
        compression: 'none' as const,
        onEvent: (event: PackEvent) => emit?.({ type: 'pack', event }),
        annotations: { [Annotation.Source]: sourceURL, [Annotation.Revision]: commit },
        descriptorExtras: {
          sourceURL,
          revision: commit,
          ...(findings.modelType ? { family: findings.modelType } : {}),
          ...(readme ? { docURL: `${sourceURL}/blob/${commit}/${readme}` } : {}),
        },
      };
      let result: PackResult & { pushed?: TransferSummary[] };
      if (opts.push) {
        const { packAndPush } = await import('../transfer/pack-push.js');
        result = await packAndPush(packOpts, {
          ...(opts.registry ? { settings: opts.registry } : {}),
          ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
          onEvent: (event) => emit?.({ type: 'push', event }),
        });
      } else {
        const { LocalStore } = await import('../store/local-store.js');
        const store = await LocalStore.open();
        result = await pack({ ...packOpts, sink: new StoreSink(store) });
      }

      await removeDownloads(dirs, ctx);
      const counts = { downloaded: 0, cached: 0, linked: 0 };
      for (const v of how.values()) counts[v]++;
      return {
        ...result,
        repository: spec.id,
        repoType: spec.type,
        revision,
        commit,
        sourceURL,
        files: { count: selected.length, bytes: totalBytes, ...counts },
        kitfile,
      };
    } finally {
      await rm(ctx, { recursive: true, force: true });
      await rm(kitfilePath, { force: true });
      await releaseCtx?.();
    }
  } finally {
    await http.close();
  }
}
