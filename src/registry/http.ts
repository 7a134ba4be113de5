import { Readable, Transform } from 'node:stream';
import type { Dispatcher } from 'undici';
import { KitError } from '../errors.js';
import { Authorizer, sameOrigin, type Authorization } from './auth/authorizer.js';
import type { PlainRequest } from './auth/token.js';
import type { CredentialSource } from './credentials/types.js';
import { displayUrl } from './errors.js';
import { registrySettingsPath } from './settings.js';
import type { RegistryClient, RegistryRequest, RegistryResponse } from './types.js';

/**
 * The transport under the distribution protocol: one request in, one response out, with
 * retries (backoff with full jitter, Retry-After), the redirect policy (credentials never
 * cross origins, no https -> http) and authentication (auth/authorizer.ts).
 */

export interface HttpClientOptions {
  registry: string;
  /** scheme://host[:port] of the registry. */
  baseUrl: string;
  dispatcher: Dispatcher;
  credentials: CredentialSource;
  userAgent: string;
  /** Attempts per request, the first one included. */
  maxAttempts: number;
  /** First backoff delay; it doubles per attempt up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs?: number;
  /** A server's Retry-After longer than this is shortened to it. */
  maxRetryAfterMs?: number;
  /**
   * How long a request may wait for the response headers, and how long a response body may go
   * without delivering a byte, before the exchange counts as stalled (a transient failure,
   * retried like a reset connection). Default: httpTimeoutMs() (60 s, or KIT_HTTP_TIMEOUT_MS).
   */
  timeoutMs?: number;
}

export const DEFAULT_HTTP_TIMEOUT_MS = 60_000;

/**
 * The stall timeout: `KIT_HTTP_TIMEOUT_MS` when it is a positive whole number of milliseconds,
 * else 60 s. undici's own defaults (300 s each) would leave a hung registry blocking a pull or a
 * push for five minutes per attempt.
 */
export function httpTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env['KIT_HTTP_TIMEOUT_MS'];
  if (raw !== undefined && /^\d+$/.test(raw.trim())) {
    const n = Number(raw.trim());
    if (Number.isSafeInteger(n) && n > 0) return n;
  }
  return DEFAULT_HTTP_TIMEOUT_MS;
}

const DEFAULT_TEXT_LIMIT = 4 * 1024 * 1024;
const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Headers that carry credentials: they stay with the origin they were meant for. */
const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'cookie'];

/** Failures of the connection rather than of the request: worth another try. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH', 'ENETDOWN',
  'EHOSTUNREACH', 'EHOSTDOWN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
]);
/** The host does not exist: retrying will not change that. */
const UNREACHABLE_CODES = new Set(['ENOTFOUND']);
/** Certificate verification failures (Node / OpenSSL codes). */
const TLS_VERIFY_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE', 'CERT_REVOKED', 'INVALID_CA', 'ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH',
]);
/** What OpenSSL says when the other side answered a TLS hello in plain HTTP. */
export const PLAIN_HTTP_TLS_CODES = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST']);

type ErrorKind = 'transient' | 'unreachable' | 'tls-verify' | 'tls-plain-http' | 'tls' | 'other';

/** The errno-style code of an error or of one of its causes. */
export function networkCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function classify(code: string | undefined): ErrorKind {
  if (code === undefined) return 'other';
  if (TRANSIENT_CODES.has(code)) return 'transient';
  if (UNREACHABLE_CODES.has(code)) return 'unreachable';
  if (TLS_VERIFY_CODES.has(code)) return 'tls-verify';
  if (PLAIN_HTTP_TLS_CODES.has(code)) return 'tls-plain-http';
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return 'tls';
  return 'other';
}

/** 408, 429 and server errors are worth another try; 501 (not implemented) is an answer. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599 && status !== 501);
}

/** `Retry-After` as milliseconds: delay-seconds or an HTTP date; undefined when absent or invalid. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP-date names the day and month; Date.parse alone would take "-1" for a year.
  if (!/^[A-Za-z]{3},/.test(v)) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** Exponential backoff with full jitter (a random delay in [0, min(cap, base * 2^(n-1))]). */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

/** Waits `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function normaliseHeaders(raw: Record<string, string | string[] | undefined>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

function lowerCaseKeys(h: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) out[k.toLowerCase()] = v;
  return out;
}

function withoutBodyHeaders(h: Record<string, string>): Record<string, string> {
  const out = { ...h };
  for (const name of ['content-length', 'content-type', 'content-encoding', 'transfer-encoding', 'digest']) delete out[name];
  return out;
}

function withoutCredentials(h: Record<string, string>): Record<string, string> {
  const out = { ...h };
  for (const name of CREDENTIAL_HEADERS) delete out[name];
  return out;
}

async function readText(body: Readable, maxBytes: number, url: URL): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buf.length;
    if (size > maxBytes) {
      body.destroy();
      throw new KitError('RESPONSE_TOO_LARGE', `the response from ${displayUrl(url)} is larger than ${maxBytes} bytes, more than kit accepts here`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function dumpBody(body: Readable & { dump?: (opts?: { limit: number }) => Promise<void> }): Promise<void> {
  try {
    // undici's dump reads a little (so the connection can be reused) and then gives up.
    if (typeof body.dump === 'function') await body.dump();
    else body.destroy();
  } catch {
    /* a body we throw away may fail as it likes */
  }
}

function toResponse(status: number, rawHeaders: Record<string, string | string[] | undefined>, body: Readable, url: URL): RegistryResponse {
  return {
    status,
    headers: normaliseHeaders(rawHeaders),
    url: url.href,
    body,
    text: (maxBytes = DEFAULT_TEXT_LIMIT) => readText(body, maxBytes, url),
    dump: () => dumpBody(body),
  };
}

/** An async iterable (not a stream) is handed to undici as it is: see ContentReader on transient buffers. */
type BodySource = () => Buffer | string | Readable | AsyncIterable<Buffer>;

function bodySource(req: { body?: Buffer | string; stream?: () => Readable | AsyncIterable<Buffer> }): BodySource | undefined {
  if (req.stream) return req.stream;
  if (req.body !== undefined) {
    const b = req.body;
    return () => b;
  }
  return undefined;
}

/** One HTTP exchange description, after URL resolution. */
interface Exchange {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body: BodySource | undefined;
  /** May the exchange be sent again after a failure? */
  retry: boolean;
  signal: AbortSignal | undefined;
}

export class HttpRegistryClient implements RegistryClient {
  readonly registry: string;
  readonly baseUrl: string;
  readonly #base: URL;
  readonly #dispatcher: Dispatcher;
  readonly #authorizer: Authorizer;
  readonly #userAgent: string;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #maxRetryAfterMs: number;
  readonly #timeoutMs: number;

  constructor(opts: HttpClientOptions) {
    this.registry = opts.registry;
    this.#base = new URL(opts.baseUrl);
    this.baseUrl = this.#base.origin;
    this.#dispatcher = opts.dispatcher;
    this.#userAgent = opts.userAgent;
    this.#maxAttempts = Math.max(1, Math.floor(opts.maxAttempts));
    this.#baseDelayMs = Math.max(0, opts.baseDelayMs);
    this.#maxDelayMs = opts.maxDelayMs ?? 10_000;
    this.#maxRetryAfterMs = opts.maxRetryAfterMs ?? 60_000;
    this.#timeoutMs = opts.timeoutMs ?? httpTimeoutMs();
    this.#authorizer = new Authorizer({
      registry: opts.registry,
      origin: this.#base,
      credentials: opts.credentials,
      send: (r) => this.#sendPlain(r),
    });
  }

  /** Closes the connection pool. Requests after this fail. */
  close(): Promise<void> {
    return this.#dispatcher.close();
  }

  #resolve(url: string): URL {
    if (url.startsWith('/')) return new URL(url, this.#base);
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new KitError('REQUEST_INVALID', `not a URL or absolute path: ${JSON.stringify(url.slice(0, 100))}`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') {
      throw new KitError('REQUEST_INVALID', `kit only speaks http(s) to registries, not ${JSON.stringify(u.protocol)}`);
    }
    return u;
  }

  async request(req: RegistryRequest): Promise<RegistryResponse> {
    const start = this.#resolve(req.url);
    let callerHeaders = lowerCaseKeys(req.headers);
    const callerAuth = callerHeaders['authorization'] !== undefined;
    let method: string = req.method;
    let body = bodySource(req);
    const retry = req.retry !== false;
    let url = start;

    for (let hop = 0; ; hop++) {
      // Credentials given by the caller belong to the origin the request was addressed to.
      const own = sameOrigin(url, start);
      const headers = { 'user-agent': this.#userAgent, ...(own ? callerHeaders : withoutCredentials(callerHeaders)) };
      const res = await this.#sendAuthorized({ url, method, headers, body, retry, signal: req.signal }, req.scopes, callerAuth && own);
      if (!req.followRedirects || !REDIRECTS.has(res.status)) return res;
      const location = res.headers['location'];
      if (location === undefined || location === '') return res;

      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        await res.dump();
        throw this.#redirectRefused(url, 'to an invalid Location');
      }
      if (next.protocol !== 'https:' && next.protocol !== 'http:') {
        await res.dump();
        throw this.#redirectRefused(url, `to a ${next.protocol} URL`);
      }
      if (url.protocol === 'https:' && next.protocol === 'http:') {
        await res.dump();
        throw this.#redirectRefused(url, `from https to plain http (${displayUrl(next)})`);
      }
      if (hop >= MAX_REDIRECTS) {
        await res.dump();
        throw new KitError('TOO_MANY_REDIRECTS', `${this.registry}: more than ${MAX_REDIRECTS} redirects for ${displayUrl(start)}`);
      }
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
        // The method changes and the body stays behind, as browsers and curl do.
        if (method !== 'HEAD') method = 'GET';
        body = undefined;
        callerHeaders = withoutBodyHeaders(callerHeaders);
      } else if (body !== undefined && !retry) {
        // 307/308 would need the body again, and it cannot be replayed: let the caller decide.
        return res;
      }
      await res.dump();
      url = next;
    }
  }

  #redirectRefused(from: URL, why: string): KitError {
    return new KitError('INSECURE_REDIRECT', `${this.registry} redirected ${displayUrl(from)} ${why}; kit refused to follow`, {
      hint: 'the registry or a proxy in between is misconfigured or hostile; nothing was sent to the new location',
    });
  }

  /** Sends with the registry's Authorization (when the URL is on its origin) and answers 401 challenges. */
  async #sendAuthorized(x: Exchange, scopes: string[], callerAuth: boolean): Promise<RegistryResponse> {
    if (callerAuth) return this.#sendWithRetry(x);
    let auth: Authorization | undefined = await this.#authorizer.authorize(x.url, scopes, x.signal);
    let res = await this.#sendWithRetry(withAuth(x, auth));
    // Bounded: a cached token refused, then a fresh one for a wider scope set refused, and stop.
    for (let round = 0; round < 3 && res.status === 401; round++) {
      const challenge = res.headers['www-authenticate'];
      if (challenge === undefined || !this.#authorizer.appliesTo(x.url)) break;
      const next = await this.#authorizer.challenge(x.url, scopes, challenge, auth, x.signal);
      if (!next) break;
      // The challenge is learnt and a token cached for the caller's next request, but a body
      // that cannot be replayed cannot be sent again.
      if (x.body !== undefined && !x.retry) break;
      await res.dump();
      auth = next;
      res = await this.#sendWithRetry(withAuth(x, auth));
    }
    return res;
  }

  /** Token requests: retried like any request, never authorized with the registry's token. */
  #sendPlain(r: PlainRequest): Promise<RegistryResponse> {
    const body = r.body;
    return this.#sendWithRetry({
      url: r.url,
      method: r.method,
      headers: { 'user-agent': this.#userAgent, ...r.headers },
      body: body === undefined ? undefined : () => body,
      retry: true,
      signal: r.signal,
    });
  }

  async #sendWithRetry(x: Exchange): Promise<RegistryResponse> {
    const attempts = x.retry ? this.#maxAttempts : 1;
    for (let attempt = 1; ; attempt++) {
      let res: RegistryResponse;
      try {
        res = await this.#sendOnce(x);
      } catch (err) {
        if (x.signal?.aborted) throw err;
        const code = networkCode(err);
        const kind = classify(code);
        if (kind === 'transient' && attempt < attempts) {
          await sleep(backoffDelay(attempt, this.#baseDelayMs, this.#maxDelayMs), x.signal);
          continue;
        }
        throw this.#networkError(err, x.url, kind, code, attempt);
      }
      if (attempt < attempts && isRetryableStatus(res.status)) {
        const retryAfter = parseRetryAfter(res.headers['retry-after']);
        const delay = retryAfter !== undefined ? Math.min(retryAfter, this.#maxRetryAfterMs) : backoffDelay(attempt, this.#baseDelayMs, this.#maxDelayMs);
        await res.dump();
        await sleep(delay, x.signal);
        continue;
      }
      return res;
    }
  }

  async #sendOnce(x: Exchange): Promise<RegistryResponse> {
    const raw = x.method === 'GET' || x.method === 'HEAD' ? undefined : x.body?.();
    // undici's headersTimeout runs from the start of the request, body upload included: a chunk
    // on a slow link would be cut while it is still moving. Requests with a sizeable body get
    // a watchdog instead, that times out only when the upload stops moving, or when the answer
    // does not come within the timeout once the body is sent.
    const watched = raw !== undefined && typeof raw !== 'string' && (!Buffer.isBuffer(raw) || raw.length > WATCHED_BODY_BYTES);
    const watch = watched ? new StallWatchdog(this.#timeoutMs, x.signal) : undefined;
    const headers = watch && Buffer.isBuffer(raw) && headerOf(x.headers, 'content-length') === undefined ? { ...x.headers, 'content-length': String(raw.length) } : x.headers;
    const body = !watch ? raw : Buffer.isBuffer(raw) ? watch.track(bufferStream(raw)) : raw instanceof Readable ? watch.track(raw) : watch.trackIterable(raw as AsyncIterable<Buffer>);
    try {
      const r = await this.#dispatcher.request({
        origin: x.url.origin,
        path: x.url.pathname + x.url.search,
        method: x.method as Dispatcher.HttpMethod,
        headers,
        // undici sends an async iterable too (writeIterable), which its types do not list.
        body: (body ?? null) as Dispatcher.RequestOptions['body'],
        signal: watch?.signal ?? x.signal ?? null,
        // A stalled exchange fails with UND_ERR_HEADERS_TIMEOUT / UND_ERR_BODY_TIMEOUT (transient):
        // the body timeout is an idle timer, so a slow but moving download is never cut.
        headersTimeout: watch ? 0 : this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      });
      watch?.done();
      return toResponse(r.statusCode, r.headers, r.body, x.url);
    } catch (err) {
      watch?.done();
      if (body instanceof Readable) body.destroy();
      else if (body && typeof body === 'object' && Symbol.asyncIterator in body) void (body as AsyncGenerator<Buffer>).return?.(undefined).catch(() => undefined);
      // The watchdog's own abort: a stall, as undici would have reported it.
      if (watch?.fired) throw watch.fired;
      throw err;
    }
  }

  #networkError(err: unknown, url: URL, kind: ErrorKind, code: string | undefined, attempts: number): unknown {
    const host = url.host;
    const at = host === this.#base.host ? this.registry : `${host} (used by ${this.registry})`;
    const detail = code ?? 'error';
    switch (kind) {
      case 'tls-verify':
        return new KitError('TLS_VERIFY_FAILED', `the TLS certificate of ${at} is not trusted (${detail}: ${(err as Error).message})`, {
          hint: `if it is signed by a private CA, set "caCert" for ${this.registry} in ${registrySettingsPath()} (or pass the CA file); turning verification off ("tlsVerify": false) is insecure`,
          cause: err,
        });
      case 'tls-plain-http':
        return new KitError('TLS_HANDSHAKE_FAILED', `${at} does not speak TLS on ${url.origin}: it answered like a plain HTTP server`, {
          hint: `if the registry really has no TLS, set "plainHttp": true for ${this.registry} in ${registrySettingsPath()} (or use --plain-http)`,
          cause: err,
        });
      case 'tls':
        return new KitError('TLS_HANDSHAKE_FAILED', `the TLS handshake with ${at} failed (${detail})`, {
          hint: 'check the registry address and its TLS configuration (client certificate, protocol versions)',
          cause: err,
        });
      case 'transient':
      case 'unreachable':
        return new KitError('REGISTRY_UNREACHABLE', `cannot reach ${at} at ${url.origin} (${detail}${attempts > 1 ? `, ${attempts} attempts` : ''})`, {
          hint: 'check the registry address, your network connection and proxy settings (HTTPS_PROXY, NO_PROXY)',
          cause: err,
        });
      default:
        return err;
    }
  }
}

/** Bodies up to this size go out as they are; bigger ones are watched for stalls. */
const WATCHED_BODY_BYTES = 256 * 1024;
const BODY_PIECE = 256 * 1024;

function headerOf(h: Record<string, string>, name: string): string | undefined {
  for (const [k, v] of Object.entries(h)) if (k.toLowerCase() === name) return v;
  return undefined;
}

/** A buffer as a stream of pieces, so that its upload can be watched as it is pulled. */
function bufferStream(buf: Buffer): Readable {
  let at = 0;
  return new Readable({
    read() {
      if (at >= buf.length) return void this.push(null);
      const end = Math.min(buf.length, at + BODY_PIECE);
      this.push(buf.subarray(at, end));
      at = end;
    },
  });
}

/**
 * Aborts a request whose body upload has not moved for `timeoutMs`, or whose answer has not begun
 * `timeoutMs` after the body was sent. The error has undici's code for a headers timeout, so the
 * exchange is retried like any other stall. Progress is seen as the transport takes the body, so
 * bytes still queued in the operating system's socket buffer (a few MiB) count as sent: only a
 * link too slow to drain that buffer within the timeout is mistaken for a stall.
 */
class StallWatchdog {
  readonly #controller = new AbortController();
  readonly #timeoutMs: number;
  #timer: NodeJS.Timeout | undefined;
  fired: Error | undefined;

  constructor(timeoutMs: number, outer: AbortSignal | undefined) {
    this.#timeoutMs = timeoutMs;
    if (outer) {
      if (outer.aborted) this.#controller.abort(outer.reason);
      else outer.addEventListener('abort', () => this.#controller.abort(outer.reason), { once: true });
    }
    this.#arm();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Re-arms the timer on every piece of `body` the transport takes. */
  track(body: Readable): Readable {
    const watched = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        this.#arm();
        cb(null, chunk);
      },
      flush: (cb) => {
        this.#arm(); // the body is out: the answer has timeoutMs to begin
        cb();
      },
    });
    body.once('error', (e) => watched.destroy(e));
    return body.pipe(watched);
  }

  /** The same for an async-iterable body, kept one: each piece is taken only when the transport asks. */
  trackIterable(body: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
    const arm = (): void => this.#arm();
    return (async function* watched() {
      for await (const chunk of body) {
        arm();
        yield chunk;
      }
      arm(); // the body is out: the answer has timeoutMs to begin
    })();
  }

  done(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.fired = Object.assign(new Error(`no progress for ${this.#timeoutMs} ms`), { code: 'UND_ERR_HEADERS_TIMEOUT' });
      this.#controller.abort(this.fired);
    }, this.#timeoutMs);
    this.#timer.unref?.();
  }
}

function withAuth(x: Exchange, auth: Authorization | undefined): Exchange {
  if (!auth) return x;
  return { ...x, headers: { ...x.headers, authorization: auth.header } };
}
