/**
 * Faults on the REQUEST side of blob uploads, which the harness fault proxy
 * (test/integration/harness/fault-proxy.ts) cannot make: it cuts response bodies, and upload
 * responses have none. This proxy sits between kit and the registry (127.0.0.1 only) and, on the
 * n-th PATCH or closing PUT of an upload session:
 *
 *   reset-request   reads `afterBytes` of the request body, then resets the connection (RST)
 *   close-request   reads `afterBytes`, then closes the connection (FIN) without an answer
 *   session-404     reads the body and answers 404 BLOB_UPLOAD_UNKNOWN; with `drop`, first
 *                   cancels the session on the registry (DELETE), so that it is really gone
 *   hang            reads nothing and never answers (until stop): a hung server, or the moment
 *                   to SIGKILL the client
 *
 * A faulted request is never passed on, not even in part: the registry sees whole chunks or
 * nothing. That models a load balancer or a registry that commits chunks atomically (ECR parts,
 * GCS resumable uploads). CNCF distribution itself keeps a half-received chunk, after which the
 * upload URL kit holds is refused (404 BLOB_UPLOAD_INVALID: its `_state` token no longer matches),
 * so with it a chunk cut mid-body can only be recovered by starting the blob again; kit does that
 * too (see the session-404 `drop` case), but it is not what this proxy is for.
 *
 * Every request is logged like the fault proxy does (bytes in from the client, bytes out to it).
 */
import { createServer, request as httpRequest, Agent, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { once } from 'node:events';

export type UploadFaultKind = 'reset-request' | 'close-request' | 'session-404' | 'hang';

export interface UploadFaultRule {
  kind: UploadFaultKind;
  /** PATCH (default) or PUT (the closing PUT ?digest=). */
  method?: 'PATCH' | 'PUT';
  /** Which matching requests (1-based, counted over the proxy's lifetime) get the fault. */
  nth: number[];
  /** reset-request / close-request: body bytes read before the cut. */
  afterBytes?: number;
  /** session-404: really cancel the session on the registry first. */
  drop?: boolean;
  /** Count only requests without a body (the closing PUT of a chunked upload, not a one-shot PUT). */
  emptyBody?: boolean;
}

export interface UploadLogEntry {
  method: string;
  url: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytesIn: number;
  bytesOut: number;
  fault?: UploadFaultKind;
}

export interface UploadFaultProxy {
  url: string;
  host: string;
  log: UploadLogEntry[];
  /** How many times each rule (by index) fired. */
  fired(index: number): number;
  /** Resolves when a `hang` rule has caught a request. */
  hung: Promise<void>;
  stop(): Promise<void>;
}

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'expect', 'host']);
const UPLOAD_SESSION = /\/blobs\/uploads\/[^/?]+/;

function copyHeaders(h: IncomingMessage['headers']): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP.has(k)) out[k] = v;
  return out;
}

async function drain(req: IncomingMessage, count: (n: number) => void): Promise<void> {
  for await (const c of req as AsyncIterable<Buffer>) count(c.length);
}

export async function startUploadFaultProxy(opts: { target: string; rules: UploadFaultRule[] }): Promise<UploadFaultProxy> {
  const target = new URL(opts.target);
  const agent = new Agent({ keepAlive: true });
  const log: UploadLogEntry[] = [];
  const fired = opts.rules.map(() => 0);
  const counters: Record<string, number> = {};
  const sockets = new Set<Socket>();
  let signalHung: () => void = () => {};
  const hung = new Promise<void>((resolve) => (signalHung = resolve));
  let origin = '';

  const upstream = (method: string, path: string, headers: OutgoingHttpHeaders): ReturnType<typeof httpRequest> =>
    httpRequest(new URL(path, target.origin), { method, headers: { ...headers, host: target.host }, agent });

  async function handle(req: IncomingMessage, res: ServerResponse, entry: UploadLogEntry): Promise<void> {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    let rule: UploadFaultRule | undefined;
    if ((method === 'PATCH' || method === 'PUT') && UPLOAD_SESSION.test(url)) {
      const empty = req.headers['content-length'] === '0';
      const key = `${method}${empty ? '-empty' : ''}` as const;
      const n = (counters[key] = (counters[key] ?? 0) + 1);
      const nAny = method === 'PUT' ? (counters.PUTANY = (counters.PUTANY ?? 0) + 1) : n;
      const i = opts.rules.findIndex((r) => (r.method ?? 'PATCH') === method && r.nth.includes(r.emptyBody ? (empty ? n : -1) : nAny));
      if (i >= 0) {
        rule = opts.rules[i]!;
        fired[i]!++;
        entry.fault = rule.kind;
      }
    }
    const countIn = (n: number): void => void (entry.bytesIn += n);

    if (rule?.kind === 'hang') {
      req.pause();
      signalHung();
      await once(res, 'close');
      return;
    }
    if (rule?.kind === 'reset-request' || rule?.kind === 'close-request') {
      const limit = rule.afterBytes ?? 0;
      const socket = req.socket;
      await new Promise<void>((resolve) => {
        const onData = (c: Buffer): void => {
          countIn(c.length);
          if (entry.bytesIn >= limit) {
            req.off('data', onData);
            req.pause();
            if (rule!.kind === 'reset-request') socket.resetAndDestroy();
            else socket.destroy();
            resolve();
          }
        };
        req.on('data', onData);
        req.once('end', () => {
          // The body was shorter than the cut: cut at its end.
          if (rule!.kind === 'reset-request') socket.resetAndDestroy();
          else socket.destroy();
          resolve();
        });
        req.once('error', () => resolve());
      });
      return;
    }
    if (rule?.kind === 'session-404') {
      await drain(req, countIn);
      if (rule.drop) {
        // Really forget the session on the registry: the Location kit holds now leads nowhere.
        const del = upstream('DELETE', url, {});
        del.end();
        const r = await new Promise<IncomingMessage>((resolve, reject) => del.once('response', resolve).once('error', reject));
        r.resume();
        await once(r, 'end');
      }
      const body = JSON.stringify({ errors: [{ code: 'BLOB_UPLOAD_UNKNOWN', message: 'blob upload unknown to registry (injected)' }] });
      res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      entry.bytesOut += Buffer.byteLength(body);
      return;
    }

    // Pass through, streaming both ways.
    const out = upstream(method, url, copyHeaders(req.headers));
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      out.once('response', resolve);
      out.on('error', reject);
    });
    req.on('data', (c: Buffer) => {
      countIn(c.length);
      if (!out.write(c)) {
        req.pause();
        out.once('drain', () => req.resume());
      }
    });
    req.once('end', () => out.end());
    req.once('close', () => {
      if (!req.readableEnded) out.destroy();
    });
    const up = await response;
    res.once('close', () => up.destroy());
    const headers = copyHeaders(up.headers);
    if (typeof headers.location === 'string' && headers.location.startsWith(target.origin)) {
      headers.location = origin + headers.location.slice(target.origin.length);
    }
    res.writeHead(up.statusCode ?? 502, headers);
    for await (const c of up as AsyncIterable<Buffer>) {
      entry.bytesOut += c.length;
      if (!res.write(c)) await once(res, 'drain');
    }
    res.end();
  }

  const server = createServer((req, res) => {
    const entry: UploadLogEntry = { method: req.method ?? '', url: req.url ?? '', status: 0, headers: { ...req.headers }, bytesIn: 0, bytesOut: 0 };
    res.once('close', () => {
      entry.status = res.headersSent ? res.statusCode : 0;
      log.push(entry);
    });
    handle(req, res, entry).catch(() => {
      if (!res.headersSent && !res.destroyed) res.writeHead(502).end();
      else res.destroy();
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  origin = `http://127.0.0.1:${port}`;
  return {
    url: origin,
    host: `127.0.0.1:${port}`,
    log,
    fired: (i) => fired[i] ?? 0,
    hung,
    async stop() {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
