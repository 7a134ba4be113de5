/**
 * An HTTP(S) proxy in front of a real registry that reproduces behaviours of hosted registries,
 * and faults, that the local distribution server never shows by itself:
 *
 *   patch-limit          PATCH bodies over maxBytes refused (GHCR refuses chunks over 4 MiB)
 *   patch-201            PATCH answered 201 instead of 202 (ECR)
 *   reject-patch         chunked uploads refused outright (GAR)
 *   redirect-blob-get    blob GETs answered with a redirect to another origin (S3/CDN style)
 *   location-other-host  the upload Location from POST points at another origin
 *   paginate-tags        tags/list paginated with Link headers (distribution 2.8 ignores `n`)
 *   cross-origin-link    the Link header of tags/list or _catalog points at another origin
 *   redirect             any request redirected to another origin (with `tls`, an https->http downgrade)
 *   status-burst         the first N matching requests answered 5xx/429 (with Retry-After)
 *   reset-mid-body       the connection reset (RST) after N response bytes
 *   truncate-body        the response cut short after N bytes (FIN, or a "complete" short body)
 *   corrupt-body         one response byte flipped, so the content no longer matches its digest
 *   stall                a pause before answering, or after N body bytes
 *   set-header           a response header replaced or removed
 *   ignore-range         blob GETs forwarded without their Range header, so the whole blob comes
 *                        back with 200 (storage backends and proxies that ignore Range)
 *
 * Everything streams with back-pressure (constant memory, whatever the blob size); only the small
 * tags/list JSON is read whole. Absolute Location/Link URLs naming the registry are rewritten to the
 * proxy's own origin so clients keep talking to the proxy.
 *
 * `startBlobMirror` is the "other origin": it fronts the same registry, records the headers it
 * receives (so tests can prove no Authorization or Cookie followed a redirect), and forwards with
 * its own credentials only, as a pre-signed URL would.
 */
import { createServer, Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

// ---------------------------------------------------------------------------------------------
// Rules

/** Fields every rule may carry. */
export interface RuleCommon {
  /** Tested against the request's path and query. Each kind has a sensible default (see below). */
  match?: RegExp;
  /** Methods the rule applies to; each kind has a default (PATCH for the upload rules...). */
  method?: string | string[];
  /**
   * How many times the rule may fire. Default: `count` for status-burst, 1 for the one-off faults
   * (reset-mid-body, truncate-body, corrupt-body, stall), unlimited for the behaviour shapes.
   */
  times?: number;
  /** Fire only with this probability (0..1), drawn from the proxy's seeded generator. */
  probability?: number;
}

export type FaultRule = RuleCommon &
  (
    | { kind: 'patch-limit'; maxBytes: number; status?: number }
    | { kind: 'patch-201' }
    | { kind: 'reject-patch'; status?: number }
    | { kind: 'redirect-blob-get'; to: string; status?: number }
    | { kind: 'location-other-host'; to: string }
    | { kind: 'paginate-tags'; pageSize: number; absoluteLink?: boolean }
    | { kind: 'cross-origin-link'; to: string }
    | { kind: 'redirect'; to: string; status?: number }
    | { kind: 'status-burst'; status: number; count: number; retryAfter?: string }
    | { kind: 'reset-mid-body'; afterBytes: number }
    | { kind: 'truncate-body'; afterBytes: number; keepLength?: boolean }
    | { kind: 'corrupt-body'; atByte?: number }
    | { kind: 'stall'; ms: number; afterBytes?: number }
    | { kind: 'set-header'; name: string; value?: string }
    | { kind: 'ignore-range' }
  );

type Kind = FaultRule['kind'];

const UPLOAD = /\/blobs\/uploads\//;
const BLOB = /^\/v2\/.+\/blobs\/sha256:[a-f0-9]{64}(\?|$)/;
const DEFAULTS: Record<Kind, { match?: RegExp; method?: string[]; times: number }> = {
  'patch-limit': { match: UPLOAD, method: ['PATCH'], times: Infinity },
  'patch-201': { match: UPLOAD, method: ['PATCH'], times: Infinity },
  'reject-patch': { match: UPLOAD, method: ['PATCH'], times: Infinity },
  'redirect-blob-get': { match: BLOB, method: ['GET'], times: Infinity },
  'location-other-host': { match: /\/blobs\/uploads\/?(\?|$)/, method: ['POST'], times: Infinity },
  'paginate-tags': { match: /^\/v2\/.+\/tags\/list(\?|$)/, method: ['GET'], times: Infinity },
  'cross-origin-link': { match: /\/tags\/list|\/_catalog/, method: ['GET'], times: Infinity },
  redirect: { times: Infinity },
  'status-burst': { times: 0 /* replaced by count */ },
  'reset-mid-body': { times: 1 },
  'truncate-body': { times: 1 },
  'corrupt-body': { times: 1 },
  stall: { times: 1 },
  'set-header': { times: Infinity },
  'ignore-range': { match: BLOB, method: ['GET'], times: Infinity },
};

/** A rule with its remaining budget. */
interface LiveRule {
  rule: FaultRule;
  left: number;
}

/** mulberry32: tiny, deterministic, good enough to decide "does this fault fire". */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Shared plumbing

export interface ProxyLogEntry {
  method: string;
  /** Path and query as the client sent them. */
  url: string;
  /** Status sent to the client (0 if the connection died before any). */
  status: number;
  /** The request headers as received from the client. */
  headers: Record<string, string | string[] | undefined>;
  /** The response headers sent to the client. */
  responseHeaders: Record<string, string | string[] | undefined>;
  /** Request body bytes received from the client. */
  bytesIn: number;
  /** Response body bytes written to the client. */
  bytesOut: number;
  /** Kinds of the rules that fired on this request, in order. */
  rules: Kind[];
}

// Headers that describe one hop, not the message: never copied across the proxy.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'expect', 'host']);

function copyHeaders(h: IncomingHttpHeaders, drop: string[] = []): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k) && !drop.includes(k)) out[k] = v;
  return out;
}

/** Replace `from`'s origin by `to` in an absolute URL; leave relative and foreign URLs alone. */
function reorigin(value: string, from: string, to: string): string {
  return value.startsWith(from + '/') || value === from ? to + value.slice(from.length) : value;
}

/** Rewrite the URL inside each `<...>` of a Link header. */
function mapLink(link: string, fn: (url: string) => string): string {
  return link.replace(/<([^>]*)>/g, (_m, url: string) => `<${fn(url)}>`);
}

function ociError(status: number): string {
  const code = status === 429 ? 'TOOMANYREQUESTS' : status === 503 ? 'UNAVAILABLE' : status === 416 ? 'SIZE_INVALID' : status === 405 ? 'UNSUPPORTED' : 'UNKNOWN';
  return JSON.stringify({ errors: [{ code, message: `injected by the fault proxy (${status})` }] });
}

/** Read and discard a request body, counting it: lets us answer early without an EPIPE on the client. */
async function drain(req: IncomingMessage, count: (n: number) => void): Promise<void> {
  for await (const chunk of req as AsyncIterable<Buffer>) count(chunk.length);
}

interface Upstream {
  origin: string;
  request: typeof httpRequest;
  agent: HttpAgent;
}

async function makeUpstream(target: string, ca?: string): Promise<Upstream> {
  const u = new URL(target);
  if (u.protocol === 'https:') {
    const agent = new HttpsAgent({ keepAlive: true, ...(ca ? { ca: await readFile(ca) } : {}) });
    return { origin: u.origin, request: httpsRequest as typeof httpRequest, agent };
  }
  return { origin: u.origin, request: httpRequest, agent: new HttpAgent({ keepAlive: true }) };
}

/** Send a request upstream; resolves with the response once its headers are in. */
function sendUpstream(up: Upstream, method: string, path: string, headers: OutgoingHttpHeaders, body: IncomingMessage | undefined, onBodyBytes: (n: number) => void): { response: Promise<IncomingMessage>; abort: () => void } {
  const target = new URL(path, up.origin);
  const out = up.request(target, { method, headers: { ...headers, host: target.host }, agent: up.agent });
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    out.once('response', resolve);
    // `on`, not `once`: an aborted request can emit more than one error, and an unheard one crashes.
    out.on('error', reject);
  });
  if (body) {
    // By hand rather than pipe(): we count every byte, and keep reading (discarding) after an
    // abort so the client can finish sending and read our answer.
    body.on('data', (chunk: Buffer) => {
      onBodyBytes(chunk.length);
      if (out.destroyed) return;
      if (!out.write(chunk)) {
        body.pause();
        const resume = (): void => {
          out.off('drain', resume);
          out.off('close', resume);
          body.resume();
        };
        out.on('drain', resume);
        out.on('close', resume);
      }
    });
    body.once('end', () => out.end());
    // The client hung up mid-body: do not let the registry see a complete request.
    body.once('close', () => {
      if (!body.readableEnded) out.destroy();
    });
  } else {
    out.end();
  }
  return { response, abort: () => out.destroy() };
}

async function listen(server: ReturnType<typeof createServer>): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

async function makeServer(tls: { cert: string; key: string } | undefined, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<ReturnType<typeof createServer>> {
  if (!tls) return createServer(handler);
  return createHttpsServer({ cert: await readFile(tls.cert), key: await readFile(tls.key) }, handler) as unknown as ReturnType<typeof createServer>;
}

// ---------------------------------------------------------------------------------------------
// The fault proxy

export interface FaultProxyOptions {
  /** The registry, e.g. http://127.0.0.1:PORT (https works too, with `targetCa`). */
  target: string;
  targetCa?: string;
  rules: FaultRule[];
  /** Seed for rules with a `probability`; default 1, so runs repeat exactly. */
  seed?: number;
  /** Serve HTTPS with this certificate (e.g. to redirect https -> http). */
  tls?: { cert: string; key: string };
}

export interface FaultProxy {
  url: string;
  /** host:port, as used in references (127.0.0.1:PORT). */
  host: string;
  log: ProxyLogEntry[];
  /** How many times each rule (by index in `rules`) has fired. */
  fired(index: number): number;
  stop(): Promise<void>;
}

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const up = await makeUpstream(opts.target, opts.targetCa);
  const random = prng(opts.seed ?? 1);
  const live: LiveRule[] = opts.rules.map((rule) => ({
    rule,
    left: rule.times ?? (rule.kind === 'status-burst' ? rule.count : DEFAULTS[rule.kind].times),
  }));
  const firedCount = new Array<number>(live.length).fill(0);
  const log: ProxyLogEntry[] = [];
  const stopping = new AbortController();
  let origin = ''; // set once listening

  /** Does the rule apply to this request (ignoring budget and probability)? */
  const applies = (r: FaultRule, method: string, url: string): boolean => {
    const d = DEFAULTS[r.kind];
    const methods = r.method === undefined ? d.method : Array.isArray(r.method) ? r.method : [r.method];
    if (methods && !methods.includes(method)) return false;
    const re = r.match ?? d.match;
    return re ? re.test(url) : true;
  };

  async function handle(req: IncomingMessage, res: ServerResponse, entry: ProxyLogEntry): Promise<void> {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const candidates = live.filter((l) => l.left > 0 && applies(l.rule, method, url));
    // Each rule fires at most once per request, and only if it has budget and wins its dice roll.
    const used = new Set<LiveRule>();
    const take = <K extends Kind>(kind: K, when: (r: Extract<FaultRule, { kind: K }>) => boolean = () => true): Extract<FaultRule, { kind: K }> | undefined => {
      for (const l of candidates) {
        const r = l.rule as Extract<FaultRule, { kind: K }>;
        if (r.kind !== kind || used.has(l) || l.left <= 0 || !when(r)) continue;
        used.add(l); // rolled once per request: a lost roll is not retried by a later check
        if (r.probability !== undefined && random() >= r.probability) continue;
        l.left--;
        firedCount[live.indexOf(l)]!++;
        entry.rules.push(kind);
        return r;
      }
      return undefined;
    };
    const countIn = (n: number): void => void (entry.bytesIn += n);
    const reply = async (status: number, headers: OutgoingHttpHeaders, body = ''): Promise<void> => {
      await drain(req, countIn);
      res.writeHead(status, { 'content-length': Buffer.byteLength(body), 'docker-distribution-api-version': 'registry/2.0', ...headers });
      res.end(body);
      entry.bytesOut += Buffer.byteLength(body);
    };

    // 1. A stall before anything is answered (a slow or hung server).
    const early = take('stall', (r) => r.afterBytes === undefined);
    if (early) await sleep(early.ms, undefined, { signal: stopping.signal });

    // 2. Answers made here without asking the registry.
    const burst = take('status-burst');
    if (burst) {
      const h: OutgoingHttpHeaders = { 'content-type': 'application/json' };
      if (burst.retryAfter !== undefined) h['retry-after'] = burst.retryAfter;
      return reply(burst.status, h, ociError(burst.status));
    }
    const reject = take('reject-patch');
    if (reject) return reply(reject.status ?? 405, { 'content-type': 'application/json' }, ociError(reject.status ?? 405));
    const declared = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined;
    const limit = take('patch-limit', (r) => declared !== undefined && declared > r.maxBytes);
    if (limit) return reply(limit.status ?? 416, { 'content-type': 'application/json' }, ociError(limit.status ?? 416));
    // A chunked PATCH has no declared length: watched while it streams (below).
    const streamLimit = declared === undefined ? candidates.find((l) => l.rule.kind === 'patch-limit')?.rule as Extract<FaultRule, { kind: 'patch-limit' }> | undefined : undefined;
    const redirectBlob = take('redirect-blob-get');
    if (redirectBlob) {
      // Like a pre-signed URL: the same path on another origin plus a signature-looking query.
      const sep = url.includes('?') ? '&' : '?';
      return reply(redirectBlob.status ?? 307, { location: `${redirectBlob.to}${url}${sep}X-Fault-Signature=not-a-secret` });
    }
    const redirect = take('redirect');
    if (redirect) return reply(redirect.status ?? 307, { location: `${redirect.to}${url}` });
    const paginate = take('paginate-tags');
    if (paginate) return paginateTags(req, res, entry, paginate);

    // 3. Forward, rewriting headers and maybe the body on the way back.
    let tooBig = false;
    const ignoreRange = req.headers.range !== undefined && take('ignore-range');
    const { response, abort } = sendUpstream(up, method, url, copyHeaders(req.headers, ignoreRange ? ['range'] : []), req, (n) => {
      countIn(n);
      if (streamLimit && !tooBig && entry.bytesIn > streamLimit.maxBytes) {
        // Past the limit: the registry must not get the rest (its upload session is abandoned,
        // as on the real service); the client gets the refusal once it has sent everything.
        tooBig = true;
        abort();
      }
    });
    let upRes: IncomingMessage;
    try {
      upRes = await response;
    } catch (err) {
      if (tooBig) {
        take('patch-limit');
        // The data listener above keeps counting and discarding; just wait for the body's end.
        if (!req.readableEnded) {
          req.resume();
          await once(req, 'end');
        }
        const body = ociError(streamLimit!.status ?? 416);
        res.writeHead(streamLimit!.status ?? 416, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        entry.bytesOut += Buffer.byteLength(body);
        return;
      }
      throw err;
    }
    res.once('close', () => upRes.destroy()); // client gone: stop reading from the registry

    let status = upRes.statusCode ?? 502;
    const headers = copyHeaders(upRes.headers);
    if (typeof headers.location === 'string') headers.location = reorigin(headers.location, up.origin, origin);
    if (typeof headers.link === 'string') headers.link = mapLink(headers.link, (u) => reorigin(u, up.origin, origin));
    if (status === 202 && take('patch-201')) status = 201;
    if (typeof headers.location === 'string') {
      const other = take('location-other-host');
      if (other) headers.location = reorigin(new URL(headers.location, origin).href, origin, other.to);
    }
    if (typeof headers.link === 'string') {
      const cross = take('cross-origin-link');
      if (cross) headers.link = mapLink(headers.link, (u) => reorigin(new URL(u, origin).href, origin, cross.to));
    }
    for (let r = take('set-header'); r; r = take('set-header')) {
      if (r.value === undefined) delete headers[r.name.toLowerCase()];
      else headers[r.name.toLowerCase()] = r.value;
    }

    // At most one body fault; each only fires if the body is long enough to reach its offset.
    const length = upRes.headers['content-length'] !== undefined ? Number(upRes.headers['content-length']) : Infinity;
    const hasBody = method !== 'HEAD' && status !== 204 && status !== 304;
    const reaches = (n: number): boolean => hasBody && n < length;
    const reset = take('reset-mid-body', (r) => reaches(r.afterBytes));
    const truncate = !reset ? take('truncate-body', (r) => reaches(r.afterBytes)) : undefined;
    const corrupt = !reset && !truncate ? take('corrupt-body', (r) => reaches(r.atByte ?? 0)) : undefined;
    const stall = !reset && !truncate && !corrupt ? take('stall', (r) => r.afterBytes !== undefined && reaches(r.afterBytes)) : undefined;
    if (truncate && truncate.keepLength === false) delete headers['content-length']; // chunked, ends "cleanly"

    res.writeHead(status, headers);
    const cut = reset?.afterBytes ?? truncate?.afterBytes;
    let sent = 0;
    for await (const raw of upRes as AsyncIterable<Buffer>) {
      let chunk = raw;
      if (corrupt) {
        const at = (corrupt.atByte ?? 0) - sent;
        if (at >= 0 && at < chunk.length) {
          chunk = Buffer.from(chunk); // never mutate a buffer we do not own
          chunk[at] = chunk[at]! ^ 0xff;
        }
      }
      if (stall?.afterBytes !== undefined && sent <= stall.afterBytes && sent + chunk.length > stall.afterBytes) {
        const head = chunk.subarray(0, stall.afterBytes - sent);
        if (head.length) await write(res, head);
        sent += head.length;
        entry.bytesOut += head.length;
        chunk = chunk.subarray(head.length);
        await sleep(stall.ms, undefined, { signal: stopping.signal });
      }
      if (cut !== undefined && sent + chunk.length >= cut) {
        const head = chunk.subarray(0, cut - sent);
        if (head.length) await new Promise<void>((resolve) => res.write(head, () => resolve())); // handed to the kernel
        entry.bytesOut += head.length;
        upRes.destroy();
        const socket = res.socket;
        if (reset) {
          // Give the client a moment to read what was sent: an RST can discard data still queued.
          await sleep(20, undefined, { signal: stopping.signal });
          socket?.resetAndDestroy(); // RST: "connection reset by peer"
        }
        if (reset) return;
        if (truncate?.keepLength === false) res.end(); // a well-formed but short response
        else socket?.end(); // FIN with bytes still owed: "premature close" / "other side closed"
        return;
      }
      await write(res, chunk);
      sent += chunk.length;
      entry.bytesOut += chunk.length;
    }
    res.end();
  }

  /** Serve tags/list in pages, as registries that honour `n`/`last` do (and some do unasked). */
  async function paginateTags(req: IncomingMessage, res: ServerResponse, entry: ProxyLogEntry, rule: Extract<FaultRule, { kind: 'paginate-tags' }>): Promise<void> {
    const asked = new URL(req.url ?? '/', origin);
    const headers = copyHeaders(req.headers, ['accept-encoding']);
    const { response } = sendUpstream(up, 'GET', asked.pathname, headers, undefined, () => {});
    const upRes = await response;
    const chunks: Buffer[] = [];
    for await (const c of upRes as AsyncIterable<Buffer>) chunks.push(c);
    const raw = Buffer.concat(chunks);
    if (upRes.statusCode !== 200) {
      // Errors (401 challenges, 404 NAME_UNKNOWN) pass through untouched.
      res.writeHead(upRes.statusCode ?? 502, { ...copyHeaders(upRes.headers), 'content-length': raw.length });
      res.end(raw);
      entry.bytesOut += raw.length;
      return;
    }
    const list = JSON.parse(raw.toString('utf8')) as { name: string; tags: string[] | null };
    const all = [...(list.tags ?? [])].sort(); // the spec promises lexical order; 2.8 does not sort
    const last = asked.searchParams.get('last');
    const nParam = asked.searchParams.get('n');
    const n = Math.min(nParam !== null ? Number(nParam) : rule.pageSize, rule.pageSize);
    const rest = last !== null ? all.filter((t) => t > last) : all;
    const page = rest.slice(0, n);
    const body = JSON.stringify({ name: list.name, tags: page });
    const out: OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'docker-distribution-api-version': 'registry/2.0' };
    if (rest.length > page.length && page.length > 0) {
      const next = `${asked.pathname}?n=${n}&last=${encodeURIComponent(page[page.length - 1]!)}`;
      let target = rule.absoluteLink ? `${origin}${next}` : next;
      const cross = live.find((l) => l.left > 0 && l.rule.kind === 'cross-origin-link' && applies(l.rule, 'GET', req.url ?? '/'));
      if (cross) {
        // The same bookkeeping as a forwarded response: budget, count, and the entry's rule list.
        cross.left--;
        firedCount[live.indexOf(cross)]!++;
        entry.rules.push('cross-origin-link');
        target = `${(cross.rule as Extract<FaultRule, { kind: 'cross-origin-link' }>).to}${next}`;
      }
      out.link = `<${target}>; rel="next"`;
    }
    res.writeHead(200, out);
    res.end(body);
    entry.bytesOut += Buffer.byteLength(body);
  }

  const server = await makeServer(opts.tls, (req, res) => {
    const entry: ProxyLogEntry = { method: req.method ?? '', url: req.url ?? '', status: 0, headers: { ...req.headers }, responseHeaders: {}, bytesIn: 0, bytesOut: 0, rules: [] };
    res.once('close', () => {
      entry.status = res.headersSent ? res.statusCode : 0;
      entry.responseHeaders = res.getHeaders() as ProxyLogEntry['responseHeaders'];
      log.push(entry);
    });
    handle(req, res, entry).catch(() => {
      // The registry went away, the client hung up, or we are stopping: answer if we still can.
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(ociError(502));
      } else {
        res.destroy();
      }
    });
  });
  const port = await listen(server);
  origin = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;

  return {
    url: origin,
    host: `127.0.0.1:${port}`,
    log,
    fired: (i) => firedCount[i] ?? 0,
    async stop() {
      stopping.abort();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      up.agent.destroy();
    },
  };
}

/** Write with back-pressure: wait for `drain` instead of letting the socket buffer grow. */
async function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  if (res.destroyed) throw new Error('client gone');
  if (res.write(chunk)) return;
  // Both waits are cancelled afterwards, so no listener outlives this call (a big blob waits
  // for drain thousands of times).
  const done = new AbortController();
  try {
    await Promise.race([
      once(res, 'drain', { signal: done.signal }),
      once(res, 'close', { signal: done.signal }).then(() => {
        throw new Error('client gone');
      }),
    ]);
  } finally {
    done.abort();
  }
}

// ---------------------------------------------------------------------------------------------
// The second origin

export interface MirrorRequest {
  method: string;
  url: string;
  /** Exactly the headers this origin received: what a CDN or bucket would see. */
  headers: Record<string, string | string[] | undefined>;
  status: number;
}

export interface BlobMirrorOptions {
  /** The real registry to serve from. */
  target: string;
  targetCa?: string;
  /**
   * Headers the mirror itself adds upstream (e.g. its own Authorization for a token registry):
   * the client's Authorization and Cookie are never forwarded, since a real CDN has no use for them.
   */
  upstreamHeaders?: Record<string, string> | (() => Promise<Record<string, string>>);
  tls?: { cert: string; key: string };
}

export interface BlobMirror {
  url: string;
  host: string;
  requests: MirrorRequest[];
  stop(): Promise<void>;
}

/**
 * Another origin in front of the same registry: the target for redirect-blob-get,
 * location-other-host, cross-origin-link and redirect. Serves whatever the registry serves
 * (blobs with Range, upload PATCH/PUT...), rewriting Locations to its own origin.
 */
export async function startBlobMirror(opts: BlobMirrorOptions): Promise<BlobMirror> {
  const up = await makeUpstream(opts.target, opts.targetCa);
  const requests: MirrorRequest[] = [];
  let origin = '';

  async function handle(req: IncomingMessage, res: ServerResponse, record: MirrorRequest): Promise<void> {
    const extra = typeof opts.upstreamHeaders === 'function' ? await opts.upstreamHeaders() : (opts.upstreamHeaders ?? {});
    const headers = { ...copyHeaders(req.headers, ['authorization', 'cookie']), ...extra };
    const method = req.method ?? 'GET';
    const { response } = sendUpstream(up, method, req.url ?? '/', headers, req, () => {});
    const upRes = await response;
    res.once('close', () => upRes.destroy());
    const out = copyHeaders(upRes.headers);
    if (typeof out.location === 'string') out.location = reorigin(out.location, up.origin, origin);
    record.status = upRes.statusCode ?? 502;
    res.writeHead(record.status, out);
    for await (const chunk of upRes as AsyncIterable<Buffer>) await write(res, chunk);
    res.end();
  }

  const server = await makeServer(opts.tls, (req, res) => {
    const record: MirrorRequest = { method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers }, status: 0 };
    requests.push(record);
    handle(req, res, record).catch(() => {
      if (!res.headersSent && !res.destroyed) {
        record.status = 502;
        res.writeHead(502).end();
      } else res.destroy();
    });
  });
  const port = await listen(server);
  origin = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  return {
    url: origin,
    host: `127.0.0.1:${port}`,
    requests,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      up.agent.destroy();
    },
  };
}
