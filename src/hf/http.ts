/**
 * HTTP to the Hugging Face Hub and the storage it redirects downloads to.
 *
 * - The token goes only to the Hub's origin (scheme, host, port of HF_ENDPOINT). A `resolve`
 *   request for an LFS/Xet file answers 302 to a CDN or storage host with a signed URL; that hop,
 *   and any other cross-origin hop, carries no Authorization (huggingface_hub does the same:
 *   file_download.py drops the header before following the Location). https -> http is refused.
 * - Retries: connection failures, 408 and 5xx with exponential backoff and jitter; 429 waits as the
 *   server says (`RateLimit: "api";r=0;t=<seconds>` per the Hub's rate-limit docs, `Retry-After`),
 *   up to a cap; a longer wait, or too many 429s, is a clear error instead of a silent hang.
 * - Errors are read as huggingface_hub's hf_raise_for_status reads them: `X-Error-Code`
 *   (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and `X-Error-Message`.
 */
import type { Readable } from 'node:stream';
import { Agent, EnvHttpProxyAgent, type Dispatcher } from 'undici';
import { ExitCode, KitError } from '../errors.js';
import { KIT_VERSION } from '../version.js';
import { sleep } from '../registry/http.js';

export interface HubResponse {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string | undefined>;
  /** The URL that answered (after redirects). */
  url: URL;
  body: Readable;
  text(maxBytes?: number): Promise<string>;
  dump(): Promise<void>;
}

export interface HubHttpOptions {
  /** The Hub's base URL; its origin is the only one that receives the token. */
  endpoint: string;
  token?: string;
  userAgent?: string;
  /** Attempts for connection failures and 5xx, the first included (default 5). */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** The longest single wait a 429 may ask for (default 300 s, the Hub's 5-minute window). */
  maxRateLimitWaitMs?: number;
  /** 429 answers accepted for one request before giving up (default 5). */
  maxRateLimitRetries?: number;
  /** Told before each wait (rate limit or backoff), for progress output. */
  onWait?: (ms: number, reason: string) => void;
  dispatcher?: Dispatcher;
}

export interface HubRequest {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const TEXT_LIMIT = 32 * 1024 * 1024;
const TRANSIENT = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH', 'ENETDOWN', 'EHOSTUNREACH',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
]);

/** The errno-style code of an error or of one of its causes. */
export function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export function isTransientError(err: unknown): boolean {
  const code = errorCode(err);
  return code !== undefined && TRANSIENT.has(code);
}

/** `Retry-After` in milliseconds (delay-seconds or HTTP date). */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  if (!/^[A-Za-z]{3},/.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * The reset time of the IETF draft `RateLimit` header as the Hub sends it,
 * `"api";r=0;t=55` (several comma-separated items possible): the largest `t`, in milliseconds.
 */
export function parseRateLimitReset(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  let best: number | undefined;
  for (const m of value.matchAll(/(?:^|;)\s*t\s*=\s*(\d+(?:\.\d+)?)/g)) {
    const ms = Math.ceil(Number(m[1]) * 1000);
    if (best === undefined || ms > best) best = ms;
  }
  return best;
}

/** How long a 429 asks us to wait: the larger of Retry-After and the RateLimit reset. */
export function rateLimitWait(headers: Record<string, string | undefined>): number | undefined {
  const waits = [parseRetryAfter(headers['retry-after']), parseRateLimitReset(headers['ratelimit'])].filter((x): x is number => x !== undefined);
  return waits.length > 0 ? Math.max(...waits) : undefined;
}


function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

function hasProxyEnv(): boolean {
  return ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'].some((k) => !!process.env[k]);
}

/** A URL for messages: no query (signed CDN URLs carry credentials in it). */
export function displayUrl(u: URL): string {
  return `${u.origin}${u.pathname}`;
}

async function readText(body: Readable, maxBytes: number, url: URL): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buf.length;
    if (size > maxBytes) {
      body.destroy();
      throw new KitError('HF_RESPONSE_TOO_LARGE', `the answer from ${displayUrl(url)} is larger than ${maxBytes} bytes, more than kit accepts`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function normalise(raw: Record<string, string | string[] | undefined>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(raw)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

export class HubHttp {
  readonly endpoint: URL;
  readonly hasToken: boolean;
  readonly #token: string | undefined;
  readonly #userAgent: string;
  readonly #direct: Dispatcher;
  readonly #proxied: Dispatcher;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #maxRateWaitMs: number;
  readonly #maxRateRetries: number;
  readonly #onWait: ((ms: number, reason: string) => void) | undefined;

  constructor(opts: HubHttpOptions) {
    this.endpoint = new URL(opts.endpoint);
    this.#token = opts.token;
    this.hasToken = opts.token !== undefined && opts.token !== '';
    this.#userAgent = opts.userAgent ?? `kit/${KIT_VERSION}`;
    const timeouts = { headersTimeout: 60_000, bodyTimeout: 60_000, keepAliveTimeout: 10_000 };
    this.#direct = opts.dispatcher ?? new Agent(timeouts);
    this.#proxied = opts.dispatcher ?? (hasProxyEnv() ? new EnvHttpProxyAgent(timeouts) : this.#direct);
    this.#maxAttempts = Math.max(1, opts.maxAttempts ?? 5);
    this.#baseDelayMs = opts.baseDelayMs ?? 500;
    this.#maxDelayMs = opts.maxDelayMs ?? 10_000;
    this.#maxRateWaitMs = opts.maxRateLimitWaitMs ?? 300_000;
    this.#maxRateRetries = opts.maxRateLimitRetries ?? 5;
    this.#onWait = opts.onWait;
  }

  async close(): Promise<void> {
    await this.#direct.close();
    if (this.#proxied !== this.#direct) await this.#proxied.close();
  }

  /** Does a request to `u` carry the token? Only on the Hub's own origin. */
  authorizes(u: URL): boolean {
    return this.hasToken && u.origin === this.endpoint.origin;
  }

  /**
   * One request, following redirects under the credential policy, retried as described at the
   * top of this file. Any status may come back; callers turn failures into errors with
   * `hubError`. A 429 that cannot be waited out throws here.
   */
  async request(url: string | URL, req: HubRequest = {}): Promise<HubResponse> {
    const start = typeof url === 'string' ? new URL(url, this.endpoint) : url;
    let rateLimited = 0;
    for (let attempt = 1; ; attempt++) {
      let res: HubResponse;
      try {
        res = await this.#follow(start, req);
      } catch (err) {
        if (req.signal?.aborted || !isTransientError(err) || attempt >= this.#maxAttempts) throw this.#networkError(err, start, attempt);
        await this.#wait(this.#backoff(attempt), `${errorCode(err)} from ${start.host}`, req.signal);
        continue;
      }
      if (res.status === 429) {
        rateLimited++;
        const asked = rateLimitWait(res.headers);
        await res.dump();
        if (asked !== undefined && asked > this.#maxRateWaitMs) throw rateLimitError(res, asked, this.#maxRateWaitMs, this.hasToken);
        if (rateLimited > this.#maxRateRetries) throw rateLimitError(res, asked, this.#maxRateWaitMs, this.hasToken);
        await this.#wait(asked ?? this.#backoff(rateLimited), 'rate limited by the Hub (429)', req.signal);
        attempt--; // a rate limit is not a failure of the attempt
        continue;
      }
      if ((res.status === 408 || (res.status >= 500 && res.status !== 501)) && attempt < this.#maxAttempts) {
        const asked = parseRetryAfter(res.headers['retry-after']);
        await res.dump();
        await this.#wait(Math.min(asked ?? this.#backoff(attempt), this.#maxDelayMs * 3), `HTTP ${res.status} from ${res.url.host}`, req.signal);
        continue;
      }
      return res;
    }
  }

  /** GET a JSON document from the Hub (capped in size); non-2xx answers become errors. */
  async getJson(url: string | URL, what: ErrorContext, signal?: AbortSignal): Promise<{ value: unknown; res: HubResponse }> {
    const res = await this.request(url, { headers: { accept: 'application/json' }, ...(signal ? { signal } : {}) });
    if (res.status < 200 || res.status > 299) throw await hubError(res, what, this.hasToken);
    const text = await res.text();
    try {
      return { value: JSON.parse(text), res };
    } catch {
      throw new KitError('HF_BAD_RESPONSE', `${displayUrl(res.url)} did not answer JSON`, { hint: 'check HF_ENDPOINT: it must name a Hugging Face Hub or a compatible mirror' });
    }
  }

  #backoff(attempt: number): number {
    const ceiling = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** Math.max(0, attempt - 1));
    return Math.floor(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  async #wait(ms: number, reason: string, signal?: AbortSignal): Promise<void> {
    this.#onWait?.(ms, reason);
    await sleep(ms, signal);
  }

  async #follow(start: URL, req: HubRequest): Promise<HubResponse> {
    let url = start;
    let method = req.method ?? 'GET';
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...(req.headers ?? {}) };
      delete headers['authorization'];
      if (this.authorizes(url)) headers['authorization'] = `Bearer ${this.#token}`;
      const res = await this.#send(url, method, headers, req.signal);
      if (!REDIRECTS.has(res.status)) return res;
      const location = res.headers['location'];
      await res.dump();
      if (!location) return res;
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw redirectRefused(url, 'to an invalid Location');
      }
      if (next.protocol !== 'https:' && next.protocol !== 'http:') throw redirectRefused(url, `to a ${next.protocol} URL`);
      if (url.protocol === 'https:' && next.protocol === 'http:') throw redirectRefused(url, `from https to plain http (${displayUrl(next)})`);
      if (hop >= MAX_REDIRECTS) throw new KitError('HF_TOO_MANY_REDIRECTS', `more than ${MAX_REDIRECTS} redirects for ${displayUrl(start)}`);
      if (res.status === 303) method = 'GET';
      url = next;
    }
  }

  async #send(url: URL, method: string, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<HubResponse> {
    const dispatcher = isLoopback(url.hostname) ? this.#direct : this.#proxied;
    const r = await dispatcher.request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: method as Dispatcher.HttpMethod,
      headers,
      signal: signal ?? null,
    });
    const body = r.body as Readable & { dump?: () => Promise<void> };
    return {
      status: r.statusCode,
      headers: normalise(r.headers),
      url,
      body,
      text: (max = TEXT_LIMIT) => readText(body, max, url),
      dump: async () => {
        try {
          if (typeof body.dump === 'function') await body.dump();
          else body.destroy();
        } catch {
          /* a body thrown away may fail as it likes */
        }
      },
    };
  }

  #networkError(err: unknown, url: URL, attempts: number): unknown {
    if (err instanceof KitError) return err;
    const code = errorCode(err);
    if (code === undefined) return err;
    const offline = code === 'ENOTFOUND' || code === 'EAI_AGAIN';
    return new KitError('HF_UNREACHABLE', `cannot reach ${url.host} (${code}${attempts > 1 ? `, ${attempts} attempts` : ''})`, {
      hint: offline
        ? 'check your network and HF_ENDPOINT; to import what is already downloaded, set HF_HUB_OFFLINE=1'
        : 'check your network, proxy settings (HTTPS_PROXY, NO_PROXY) and HF_ENDPOINT; run the import again to resume',
      cause: err,
    });
  }
}

function redirectRefused(from: URL, why: string): KitError {
  return new KitError('HF_INSECURE_REDIRECT', `${displayUrl(from)} redirected ${why}; kit refused to follow`, {
    hint: 'the Hub, mirror or a proxy in between is misconfigured or hostile; nothing was sent to the new location',
  });
}

function seconds(ms: number): string {
  return `${Math.ceil(ms / 1000)} s`;
}

function rateLimitError(res: HubResponse, asked: number | undefined, cap: number, hasToken: boolean): KitError {
  const policy = res.headers['ratelimit-policy'];
  const wait = asked !== undefined ? `; it asks to wait ${seconds(asked)}${asked > cap ? `, longer than kit waits (${seconds(cap)})` : ''}` : '';
  return new KitError('HF_RATE_LIMITED', `the Hub rate-limited kit (429 from ${res.url.host})${wait}${policy ? ` [${sanitize(policy)}]` : ''}`, {
    hint: hasToken
      ? 'run the import again later (downloaded files are kept and resume); higher limits come with a PRO or Enterprise plan'
      : 'set HF_TOKEN (or run `hf auth login`): signed-in users get higher limits; run the import again later to resume',
  });
}

/** What a failed request was about, for the error message. */
export interface ErrorContext {
  /** `org/name` or `datasets/org/name` */
  repo: string;
  revision?: string;
  file?: string;
  /** The repository's page, for "accept the conditions at ..." hints. */
  pageUrl?: string;
  tokenSource?: string;
}

/** Server text is untrusted: one line, printable, bounded. */
function sanitize(s: string, max = 300): string {
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}

/** Turn a non-2xx Hub answer into the error the user should see. Consumes the body. */
export async function hubError(res: HubResponse, ctx: ErrorContext, hasToken: boolean): Promise<KitError> {
  const code = res.headers['x-error-code'];
  let serverMessage = res.headers['x-error-message'];
  if (!serverMessage) {
    try {
      const text = await res.text(64 * 1024);
      const parsed: unknown = JSON.parse(text);
      const e = parsed && typeof parsed === 'object' ? (parsed as { error?: unknown }).error : undefined;
      if (typeof e === 'string') serverMessage = e;
    } catch {
      /* no JSON body */
    }
  } else {
    await res.dump();
  }
  const said = serverMessage ? `: ${sanitize(serverMessage)}` : '';
  const what = ctx.file ? `${ctx.file} in ${ctx.repo}` : ctx.repo;
  const tokenNote = hasToken ? `the token from ${ctx.tokenSource ?? 'the environment'}` : 'no token';
  const page = ctx.pageUrl ?? ctx.repo;

  if (code === 'GatedRepo') {
    return new KitError('HF_GATED', `${ctx.repo} is a gated repository and ${hasToken ? 'the token used has no access to it' : 'no token was used'} (HTTP ${res.status})${said}`, {
      hint: hasToken
        ? `accept the conditions (or wait for approval) at ${page} with the account of ${tokenNote}; a fine-grained token also needs "read access to public gated repos"`
        : `accept the conditions at ${page}, then set HF_TOKEN (or run \`hf auth login\`, or pass --token)`,
      exitCode: ExitCode.failure,
    });
  }
  if (code === 'RepoNotFound') {
    return new KitError('HF_REPO_NOT_FOUND', `repository ${ctx.repo} was not found on ${res.url.host} (HTTP ${res.status})${said}`, {
      hint: hasToken
        ? `check the name (datasets are hf://datasets/org/name); if it is private, ${tokenNote} has no access to it`
        : 'check the name (datasets are hf://datasets/org/name); if it is private or gated, set HF_TOKEN (or pass --token)',
      exitCode: ExitCode.notFound,
    });
  }
  if (code === 'RevisionNotFound') {
    return new KitError('HF_REVISION_NOT_FOUND', `revision ${JSON.stringify(ctx.revision ?? '?')} was not found in ${ctx.repo} (HTTP ${res.status})${said}`, {
      hint: 'name a branch, tag or full commit id that exists (see the "Files and versions" tab of the repository)',
      exitCode: ExitCode.notFound,
    });
  }
  if (code === 'EntryNotFound') {
    return new KitError('HF_ENTRY_NOT_FOUND', `${what} was not found at revision ${ctx.revision ?? '?'} (HTTP ${res.status})${said}`, {
      hint: 'the file listing and the file disagree; run the import again, and report it to the Hub if it persists',
      exitCode: ExitCode.notFound,
    });
  }
  if (res.status === 401) {
    return new KitError('HF_UNAUTHORIZED', `the Hub refused ${tokenNote} for ${what} (HTTP 401)${said}`, {
      hint: 'check that the token is valid (`hf auth whoami`); tokens are read from --token, HF_TOKEN, HUGGING_FACE_HUB_TOKEN, then $HF_HOME/token',
    });
  }
  if (res.status === 403) {
    return new KitError('HF_FORBIDDEN', `access to ${what} is forbidden with ${tokenNote} (HTTP 403)${said}`, {
      hint: `make sure the token has read access to ${page} (fine-grained tokens list the repositories they may read)`,
    });
  }
  if (res.status === 404) {
    return new KitError('HF_NOT_FOUND', `${what} was not found (HTTP 404 from ${res.url.host})${said}`, {
      hint: 'check the repository name and HF_ENDPOINT',
      exitCode: ExitCode.notFound,
    });
  }
  return new KitError('HF_HTTP_ERROR', `the Hub answered HTTP ${res.status} for ${what}${said}`, {
    hint: res.status >= 500 ? 'the Hub is having trouble; run the import again later (it resumes)' : 'check the repository name, revision and HF_ENDPOINT',
  });
}
