/**
 * The two Hub API calls an import needs, with the response shapes huggingface_hub parses
 * (hf_api.py: `model_info` / `dataset_info`, `list_repo_tree`, utils/_pagination.py):
 *
 *   GET /api/{models|datasets}/{repo}/revision/{revision}      -> { id, sha, cardData?, gated?, private?, ... }
 *   GET /api/{models|datasets}/{repo}/tree/{commit}?recursive=true
 *       -> [ { type: "file", path, size, oid, lfs?: { oid, size, pointerSize }, xetHash? },
 *            { type: "directory", path, oid, size: 0 }, ... ]
 *       with `Link: <next page URL>; rel="next"` while there are more pages (1000 entries each).
 *
 * `oid` of a file is its git blob id (sha1 of "blob <size>\0<content>"); `lfs.oid` is the sha256
 * of the content of a file stored in LFS (or Xet, which keeps the LFS pointer).
 */
import { KitError } from '../errors.js';
import { cardFromData, type ModelCard } from './model-card.js';
import { displayUrl, type ErrorContext, type HubHttp } from './http.js';
import { encodePath, repoPath, type RepoSpec } from './repo.js';

export interface RepoInfo {
  /** The full commit id the revision points at. */
  commit: string;
  card: ModelCard;
  gated?: string | boolean;
  private?: boolean;
}

export interface TreeFile {
  path: string;
  size: number;
  /** git blob sha1 */
  oid: string;
  /** sha256 of the content, for files in LFS / Xet storage */
  lfs?: { oid: string; size: number };
}

const SHA1 = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const MAX_PAGES = 100_000;

function badResponse(what: string, url: URL): KitError {
  return new KitError('HF_BAD_RESPONSE', `${displayUrl(url)} answered something kit cannot use: ${what}`, {
    hint: 'check HF_ENDPOINT: it must name a Hugging Face Hub or a compatible mirror',
  });
}

/** A repository path from the listing is untrusted: relative, no `..`, nothing odd. */
export function safeRepoPath(p: unknown): p is string {
  if (typeof p !== 'string' || p === '' || p.length > 4096) return false;
  if (p.startsWith('/') || p.includes('\\') || /[\u0000-\u001f]/.test(p)) return false;
  return p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

/** The `next` URL of a `Link` header (RFC 8288), if any. */
export function nextLink(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>(.*)$/s.exec(part);
    if (!m) continue;
    for (const param of m[2]!.split(';')) {
      const rel = /^\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))\s*$/i.exec(param);
      if (rel && (rel[1] ?? rel[2] ?? '').toLowerCase().split(/\s+/).includes('next')) return m[1];
    }
  }
  return undefined;
}

export class HubApi {
  readonly endpoint: string;

  constructor(
    private readonly http: HubHttp,
    readonly spec: RepoSpec,
    private readonly tokenSource?: string,
  ) {
    this.endpoint = http.endpoint.origin + http.endpoint.pathname.replace(/\/+$/, '');
  }

  /** The repository's web page. */
  get pageUrl(): string {
    return `${this.endpoint}/${repoPath(this.spec)}`;
  }

  context(extra: Partial<ErrorContext> = {}): ErrorContext {
    const ctx: ErrorContext = { repo: repoPath(this.spec), pageUrl: this.pageUrl, ...extra };
    if (this.tokenSource) ctx.tokenSource = this.tokenSource;
    return ctx;
  }

  /** Resolve a branch, tag or commit to its commit id, with the card data the API returns. */
  async repoInfo(revision: string): Promise<RepoInfo> {
    const url = new URL(`${this.endpoint}/api/${this.spec.type}s/${this.spec.id}/revision/${encodeURIComponent(revision)}`);
    const { value, res } = await this.http.getJson(url, this.context({ revision }));
    if (!value || typeof value !== 'object') throw badResponse('not a JSON object', res.url);
    const v = value as Record<string, unknown>;
    const sha = v['sha'];
    if (typeof sha !== 'string' || !SHA1.test(sha)) throw badResponse('no commit id ("sha")', res.url);
    const info: RepoInfo = { commit: sha, card: cardFromData(v['cardData']) };
    if (typeof v['gated'] === 'string' || typeof v['gated'] === 'boolean') info.gated = v['gated'];
    if (typeof v['private'] === 'boolean') info.private = v['private'];
    return info;
  }

  /** Every file of the repository at `commit`, following the pages of the listing. */
  async listTree(commit: string, onPage?: (files: number) => void): Promise<TreeFile[]> {
    let url: URL | undefined = new URL(`${this.endpoint}/api/${this.spec.type}s/${this.spec.id}/tree/${commit}?recursive=true`);
    const files: TreeFile[] = [];
    const seen = new Set<string>();
    for (let page = 0; url; page++) {
      if (page >= MAX_PAGES) throw badResponse(`more than ${MAX_PAGES} pages of files`, url);
      const { value, res } = await this.http.getJson(url, this.context({ revision: commit }));
      if (!Array.isArray(value)) throw badResponse('the file listing is not a JSON array', res.url);
      for (const entry of value as unknown[]) {
        const file = this.#treeFile(entry, res.url);
        if (!file) continue;
        if (seen.has(file.path)) throw badResponse(`${JSON.stringify(file.path)} is listed twice`, res.url);
        seen.add(file.path);
        files.push(file);
      }
      onPage?.(files.length);
      const next = nextLink(res.headers['link']);
      if (next === undefined) break;
      let nextUrl: URL;
      try {
        nextUrl = new URL(next, res.url);
      } catch {
        throw badResponse('an invalid next-page link', res.url);
      }
      // The listing stays on the Hub: a next page elsewhere would take the token with it.
      if (nextUrl.origin !== this.http.endpoint.origin) throw badResponse(`a next-page link to another host (${nextUrl.host})`, res.url);
      url = nextUrl;
    }
    return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  #treeFile(entry: unknown, url: URL): TreeFile | undefined {
    if (!entry || typeof entry !== 'object') throw badResponse('a listing entry is not an object', url);
    const e = entry as Record<string, unknown>;
    if (e['type'] !== 'file') return undefined; // directories: their files are listed too
    const path = e['path'];
    if (!safeRepoPath(path)) throw badResponse(`unsafe or invalid path ${JSON.stringify(path)}`, url);
    const size = e['size'];
    const oid = e['oid'];
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw badResponse(`no valid size for ${path}`, url);
    if (typeof oid !== 'string' || !SHA1.test(oid)) throw badResponse(`no valid oid for ${path}`, url);
    const file: TreeFile = { path, size, oid };
    const lfs = e['lfs'];
    if (lfs !== undefined && lfs !== null) {
      const l = lfs as Record<string, unknown>;
      if (typeof l['oid'] !== 'string' || !SHA256.test(l['oid']) || typeof l['size'] !== 'number' || l['size'] !== size) {
        throw badResponse(`invalid lfs information for ${path}`, url);
      }
      file.lfs = { oid: l['oid'], size: l['size'] };
    }
    return file;
  }

  /** The download URL of a file at a commit. */
  resolveUrl(commit: string, path: string): URL {
    return new URL(`${this.endpoint}/${repoPath(this.spec)}/resolve/${commit}/${encodePath(path)}`);
  }
}
