/**
 * A tiny fake registry on 127.0.0.1 for what a real one will not do: serve manifests that
 * distribution refuses to store (invalid JSON, over 4 MiB, unknown or contradictory media types,
 * bytes that are not what the digest says), and misbehave at the protocol level (hostile
 * WWW-Authenticate challenges and token realms, token responses without a token, endless
 * pagination). Routes are plain functions; every request is recorded with its headers so that
 * tests can prove what kit sent, and to whom.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFile } from 'node:fs/promises';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

export type FakeHandler = (req: IncomingMessage, res: ServerResponse, url: URL, origin: string) => boolean | void | Promise<boolean | void>;

export interface FakeRegistry {
  url: string;
  host: string;
  requests: FakeRequest[];
  stop(): Promise<void>;
}

/**
 * `handler` answers what it wants and returns true (or nothing after answering); unanswered
 * requests get the defaults: GET /v2/ -> 200 {}, anything else -> 404 NAME_UNKNOWN.
 */
export async function startFakeRegistry(handler: FakeHandler, opts: { tls?: { cert: string; key: string } } = {}): Promise<FakeRegistry> {
  const requests: FakeRequest[] = [];
  const sockets = new Set<Socket>();
  let origin = '';
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers } });
    const url = new URL(req.url ?? '/', origin);
    Promise.resolve(handler(req, res, url, origin))
      .then(() => {
        if (res.headersSent || res.writableEnded) return;
        if (url.pathname === '/v2/' || url.pathname === '/v2') return json(res, 200, {});
        json(res, 404, { errors: [{ code: 'NAME_UNKNOWN', message: 'no such thing here' }] });
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      });
  };
  const server = opts.tls
    ? createHttpsServer({ cert: await readFile(opts.tls.cert), key: await readFile(opts.tls.key) }, listener)
    : createServer(listener);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  origin = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  return {
    url: origin,
    host: `127.0.0.1:${port}`,
    requests,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'docker-distribution-api-version': 'registry/2.0',
    ...headers,
  });
  res.end(text);
}

/** HEAD and GET of one document, with the headers given (Content-Length defaults to the body's). */
export function serve(req: IncomingMessage, res: ServerResponse, body: Buffer, headers: Record<string, string>): void {
  res.writeHead(200, { 'content-length': String(body.length), 'docker-distribution-api-version': 'registry/2.0', ...headers });
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}
