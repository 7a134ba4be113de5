import { KitError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { getManifestVerified, parseManifestRef, putManifest, readCapped } from './manifests.js';
import { registryError } from './errors.js';
import type { RepoContext } from './repository.js';
import type { RegistryResponse } from './types.js';

/** Tags: listing (paginated with Link headers) and tagging (a manifest PUT under a new name). */

export const DEFAULT_MAX_PAGES = 100;
const PAGE_SIZE = 1000;
/** A tag list page is JSON of tag names; 4 MiB holds far more than a page of 1000. */
const MAX_PAGE_BYTES = 4 * 1024 * 1024;

export interface ListOptions {
  /** Pages followed at most before TOO_MANY_PAGES. Default 100. */
  maxPages?: number;
}

export async function listTags(ctx: RepoContext, opts: ListOptions = {}): Promise<string[]> {
  const tags: string[] = [];
  const first = `${ctx.path('tags')}?n=${PAGE_SIZE}`;
  for await (const res of followPages(ctx, first, { what: `tags of ${ctx.display}`, maxPages: opts.maxPages })) {
    const body = parseJson(await readCapped(res.body, MAX_PAGE_BYTES, `tag list of ${ctx.display}`), `tag list of ${ctx.display}`) as { tags?: unknown };
    // distribution answers `"tags": null` for a repository whose tags were all deleted.
    if (body.tags === null || body.tags === undefined) continue;
    if (!Array.isArray(body.tags)) throw new KitError('REGISTRY_PROTOCOL', `tag list of ${ctx.display} is not a list`);
    for (const t of body.tags) if (typeof t === 'string') tags.push(t);
  }
  return tags;
}

/**
 * Tag a manifest already in this repository: read its bytes by digest (verified: a registry
 * stores whatever it is given under a tag) and PUT them under the tag.
 */
export async function tagManifest(ctx: RepoContext, desc: Descriptor, tag: string): Promise<void> {
  const ref = parseManifestRef(tag);
  if (ref.kind !== 'tag') throw new KitError('REFERENCE_INVALID', `cannot tag with a digest (${tag}) in ${ctx.display}`);
  const bytes = await getManifestVerified(ctx, desc);
  await putManifest(ctx, desc, bytes, ref.tag);
}

/**
 * GETs `first`, then each `Link: <...>; rel="next"` in turn, yielding every 200 response (whose
 * body the consumer must read). A next link must stay on the origin of the page that gave it
 * (a hostile registry must not send kit's credentials, or kit itself, elsewhere), a URL seen
 * before ends the walk, and more than `maxPages` pages is an error.
 */
export async function* followPages(
  ctx: RepoContext,
  first: string,
  opts: { what: string; maxPages?: number | undefined; accept?: string; scopes?: string[]; notFoundOk?: boolean },
): AsyncGenerator<RegistryResponse> {
  const maxPages = opts.maxPages ?? DEFAULT_MAX_PAGES;
  const seen = new Set<string>();
  // Absolute from the start, so that a next link back to the first page is recognised.
  let url: string | undefined = new URL(first, ctx.client.baseUrl).href;
  let pages = 0;
  while (url !== undefined) {
    if (seen.has(url)) return;
    seen.add(url);
    if (++pages > maxPages) {
      throw new KitError('TOO_MANY_PAGES', `${opts.what}: more than ${maxPages} pages`, {
        hint: 'the registry keeps sending next-page links; it may be misbehaving',
      });
    }
    const headers: Record<string, string> = {};
    if (opts.accept) headers.accept = opts.accept;
    const res = await ctx.client.request({ method: 'GET', url, headers, scopes: opts.scopes ?? ctx.scopes.pull });
    if (res.status === 404 && pages === 1 && opts.notFoundOk) {
      // The caller asked to see a first-page 404 (e.g. "no referrers API here").
      yield res;
      return;
    }
    if (res.status !== 200) throw await registryError(res, 'list', opts.what);
    const next = nextLink(res.headers.link, res.url);
    if (next !== undefined && new URL(next).origin !== new URL(res.url).origin) {
      await res.dump();
      throw new KitError('LINK_CROSS_ORIGIN', `${opts.what}: the registry's next-page link points to another host (${new URL(next).origin})`, {
        hint: 'kit follows pagination links only on the registry that sent them',
      });
    }
    yield res;
    url = next;
  }
}

/**
 * The `rel="next"` target of a Link header (RFC 8288), absolute. Several links may be given,
 * separated by commas; parameters may be quoted or not, in any case.
 */
export function nextLink(header: string | undefined, base: string): string | undefined {
  if (header === undefined) return undefined;
  const re = /<([^>]*)>((?:\s*;\s*[^;,]+)*)/g;
  for (let m = re.exec(header); m !== null; m = re.exec(header)) {
    const params = m[2] ?? '';
    const rel = /;\s*rel\s*=\s*"?([^";]+)"?/i.exec(params)?.[1];
    if (rel !== undefined && rel.toLowerCase().split(/\s+/).includes('next')) {
      try {
        return new URL(m[1]!, base).href;
      } catch {
        throw new KitError('REGISTRY_PROTOCOL', `invalid next-page link ${JSON.stringify(m[1])}`);
      }
    }
  }
  return undefined;
}

function parseJson(bytes: Buffer, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new KitError('REGISTRY_PROTOCOL', `${what} is not valid JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new KitError('REGISTRY_PROTOCOL', `${what} is not a JSON object`);
  return v as Record<string, unknown>;
}
