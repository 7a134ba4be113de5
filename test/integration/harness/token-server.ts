/**
 * A token server for distribution's `auth: token` mode, written from distribution's
 * docs/spec/auth/{token,oauth,jwt,scope}.md and registry/auth/token/token.go.
 *
 * What the registry (2.8) checks, and so what this server must get right:
 *  - `iss` equals the registry's configured `issuer`, `aud` equals its `service` (a plain string
 *    works in every distribution version; arrays only in 3.x);
 *  - `exp`/`nbf` bracket now (the registry allows 60 s of leeway either side);
 *  - the signing key is found from the JOSE header, tried in the order `x5c`, `jwk`, `kid`. We use
 *    `x5c` = [leaf DER, base64 (standard, not url-safe)]: the registry chains the leaf to a root in
 *    its `rootcertbundle`, then verifies the signature with the leaf's key;
 *  - `alg` RS256 = RSASSA-PKCS1-v1_5 with SHA-256 over `base64url(header).base64url(claims)`;
 *  - `access` lists {type, name, actions}; a request is allowed when every needed action is there.
 *
 * Endpoints (both on the realm path, /token):
 *  - GET  ?service=&scope=...&scope=...[&offline_token=true][&account=]  with optional Basic auth.
 *    A wrong password is 401; no credentials means an anonymous subject, and the ACL decides.
 *  - POST form grant_type=password|refresh_token (OAuth2, oauth.md), answering access_token.
 * Partial grants are not errors (token.md): the token carries the intersection of what was asked
 * and what the ACL allows, possibly nothing.
 */
import { createPrivateKey, randomBytes, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeSigningChain } from './tls.js';

/**
 * Decide which of the requested actions a subject gets on one resource.
 * `user` is undefined for anonymous requests; `type` is the scope's resource type
 * (`repository` for nearly everything, `registry` for `registry:catalog:*`).
 */
export type Acl = (user: string | undefined, repo: string, actions: string[], type: string) => string[];

export interface TokenServerOptions {
  users: Record<string, string>;
  /** Default: authenticated users get every requested action, anonymous users get nothing. */
  acl?: Acl;
  /** Must match the registry's `auth.token.service`; becomes the JWT `aud`. */
  service: string;
  /** Must match the registry's `auth.token.issuer`; becomes the JWT `iss`. */
  issuer: string;
  /** Lifetime of access tokens; default 300. The registry adds 60 s of leeway past `exp`. */
  tokenTtlSeconds?: number;
  /**
   * Hand out refresh tokens: to every authenticated POST password grant and to GET requests with
   * `offline_token=true` (the spec only promises them for `access_type=offline` / `offline_token`,
   * but some real servers always send one, so we are generous: clients must cope either way).
   */
  refreshTokens?: boolean;
  /** Answer POST with 404, like token servers that only implement the GET flow. Default false. */
  disablePost?: boolean;
  /** Serve the realm over HTTPS with this certificate instead of plain HTTP. */
  tls?: { cert: string; key: string };
}

export interface TokenRequestRecord {
  method: string;
  /** GET: the URL query. POST: the form fields, with `password` and `refresh_token` redacted. */
  query: Record<string, string | string[]>;
  /** The authenticated subject, if any (Basic user, form username, or refresh-token owner). */
  user?: string;
  /** POST only: the OAuth2 grant_type. */
  grantType?: string;
  /** Every scope asked for, one entry per resource (space-joined lists are split). */
  scopes: string[];
  /** The access entries placed in the issued token (empty when refused or nothing granted). */
  granted: AccessEntry[];
  status: number;
  /** The Authorization header's scheme, if one was sent ("Basic", "Bearer"...). */
  authScheme?: string;
}

export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenServer {
  /** The URL to configure as `auth.token.realm`: http(s)://127.0.0.1:PORT/token */
  realm: string;
  /** PEM path of the root for the registry's `auth.token.rootcertbundle`. */
  rootCertBundle: string;
  service: string;
  issuer: string;
  requests: TokenRequestRecord[];
  /**
   * Issue a token directly (no HTTP): to grant what the ACL would not, or, with `claims`
   * overrides (e.g. { aud: 'other' }), to make one the registry must reject.
   */
  mint(sub: string | undefined, access: AccessEntry[], ttlSeconds?: number, claims?: Record<string, unknown>): string;
  /** Forget a refresh token, as a server that revoked it would. */
  revokeRefreshToken(token: string): void;
  stop(): Promise<void>;
}

const defaultAcl: Acl = (user, _repo, actions) => (user === undefined ? [] : actions);

/** base64url without padding, as JOSE requires. */
function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/**
 * Parse scope strings: `type:name:actions`, several joined by spaces in one string. The name can
 * hold colons (a registry host with a port, in some clients), so the type is up to the first colon
 * and the actions after the last; `type(class)` keeps only the type, which is what distribution
 * compares.
 */
export function parseScopes(values: string[]): Array<{ raw: string; type: string; name: string; actions: string[] }> {
  const out: Array<{ raw: string; type: string; name: string; actions: string[] }> = [];
  for (const value of values) {
    for (const raw of value.split(' ').filter(Boolean)) {
      const first = raw.indexOf(':');
      const last = raw.lastIndexOf(':');
      if (first < 0 || last === first) continue; // malformed: ignored, as real servers do
      const type = raw.slice(0, first).replace(/\(.*\)$/, '');
      const name = raw.slice(first + 1, last);
      const actions = raw.slice(last + 1).split(',').filter(Boolean);
      out.push({ raw, type, name, actions });
    }
  }
  return out;
}

function queryRecord(params: URLSearchParams, redact: string[] = []): Record<string, string | string[]> {
  const rec: Record<string, string | string[]> = {};
  for (const key of new Set(params.keys())) {
    const all = params.getAll(key).map((v) => (redact.includes(key) ? '<redacted>' : v));
    rec[key] = all.length === 1 ? all[0]! : all;
  }
  return rec;
}

function parseBasic(header: string | undefined): { user: string; password: string } | 'malformed' | undefined {
  if (!header) return undefined;
  const [scheme, value] = header.split(' ', 2);
  if (scheme?.toLowerCase() !== 'basic') return undefined; // a Bearer sent to the realm is not a credential here
  const decoded = Buffer.from(value ?? '', 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return 'malformed';
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

async function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new Error('form body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const dir = await mkdtemp(join(tmpdir(), 'kit-token-'));
  const chain = await makeSigningChain(dir);
  const key: KeyObject = createPrivateKey(await readFile(chain.key));
  // x5c holds DER, standard base64 (RFC 7515 4.1.6), leaf first; the root stays out of it since
  // the registry already trusts it.
  const leafDer = new X509Certificate(await readFile(chain.cert)).raw.toString('base64');
  const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c: [leafDer] }));
  const ttl = opts.tokenTtlSeconds ?? 300;
  const acl = opts.acl ?? defaultAcl;
  const requests: TokenRequestRecord[] = [];
  const refreshTokens = new Map<string, string>(); // refresh token -> user

  function mint(sub: string | undefined, access: AccessEntry[], ttlSeconds = ttl, overrides: Record<string, unknown> = {}): string {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: opts.issuer,
      sub: sub ?? '',
      aud: opts.service,
      exp: now + ttlSeconds,
      nbf: now,
      iat: now,
      jti: randomUUID(),
      access,
      ...overrides,
    };
    const signingInput = `${header}.${b64url(JSON.stringify(claims))}`;
    // For an RSA key, crypto.sign with sha256 is PKCS#1 v1.5, i.e. exactly JWS RS256.
    const signature = sign('sha256', Buffer.from(signingInput), key);
    return `${signingInput}.${b64url(signature)}`;
  }

  /** Intersect what was asked with what the ACL grants; drop resources with nothing granted. */
  function grant(user: string | undefined, scopeValues: string[]): { scopes: string[]; access: AccessEntry[] } {
    const parsed = parseScopes(scopeValues);
    const access: AccessEntry[] = [];
    for (const s of parsed) {
      const allowed = new Set(acl(user, s.name, s.actions, s.type));
      // `*` in a request means "everything I may have" (registry:catalog:*), so it passes through
      // only if the ACL grants `*` itself.
      const actions = [...new Set(s.actions.filter((a) => allowed.has(a)))];
      if (actions.length > 0) access.push({ type: s.type, name: s.name, actions });
    }
    return { scopes: parsed.map((s) => s.raw), access };
  }

  function answer(res: ServerResponse, record: TokenRequestRecord, user: string | undefined, scopeValues: string[], withRefresh: string | undefined): void {
    const { scopes, access } = grant(user, scopeValues);
    record.scopes = scopes;
    record.granted = access;
    record.status = 200;
    const token = mint(user, access);
    const body: Record<string, unknown> = {
      // Both names, as token.md allows: older clients read `token`, OAuth2 ones `access_token`.
      token,
      access_token: token,
      expires_in: ttl,
      issued_at: new Date().toISOString(),
      scope: access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`).join(' '),
    };
    if (withRefresh) body.refresh_token = withRefresh;
    sendJson(res, 200, body);
  }

  function newRefreshToken(user: string): string {
    const t = randomBytes(24).toString('base64url');
    refreshTokens.set(t, user);
    return t;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    const record: TokenRequestRecord = { method: req.method ?? '', query: queryRecord(url.searchParams), scopes: [], granted: [], status: 0 };
    const authScheme = req.headers.authorization?.split(' ', 1)[0];
    if (authScheme) record.authScheme = authScheme;
    requests.push(record);
    const fail = (status: number, body: unknown, headers?: Record<string, string>): void => {
      record.status = status;
      sendJson(res, status, body, headers);
    };

    if (url.pathname !== '/token') return fail(404, { error: 'not_found' });

    // Basic credentials may accompany either method; when present they must be right.
    const basic = parseBasic(req.headers.authorization);
    if (basic === 'malformed' || (basic && opts.users[basic.user] !== basic.password)) {
      return fail(401, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] }, { 'www-authenticate': 'Basic realm="kit-test-token"' });
    }

    const service = (params: URLSearchParams): boolean => {
      const s = params.get('service');
      // A token for another service would be useless (wrong aud), so say so instead of minting it.
      return s === null || s === opts.service;
    };

    if (req.method === 'GET') {
      if (!service(url.searchParams)) return fail(400, { error: 'invalid_request', error_description: 'unknown service' });
      if (basic) record.user = basic.user;
      const offline = url.searchParams.get('offline_token') === 'true';
      const refresh = opts.refreshTokens && offline && basic ? newRefreshToken(basic.user) : undefined;
      return answer(res, record, basic?.user, url.searchParams.getAll('scope'), refresh);
    }

    if (req.method === 'POST') {
      if (opts.disablePost) return fail(404, { error: 'not_found' });
      const form = new URLSearchParams(await readBody(req));
      record.query = queryRecord(form, ['password', 'refresh_token']);
      const grantType = form.get('grant_type') ?? '';
      record.grantType = grantType;
      if (!service(form)) return fail(400, { error: 'invalid_request', error_description: 'unknown service' });
      // oauth.md: scope is one parameter holding a space-separated list (we also accept repeats).
      const scopeValues = form.getAll('scope');

      if (grantType === 'password') {
        const user = form.get('username') ?? basic?.user;
        const password = form.get('password') ?? basic?.password;
        if (user === null || user === undefined || opts.users[user] === undefined || opts.users[user] !== password) {
          // distribution's token.md asks for 401 on failed authentication (RFC 6749 would say 400).
          return fail(401, { error: 'invalid_grant', error_description: 'invalid username or password' });
        }
        record.user = user;
        const refresh = opts.refreshTokens ? newRefreshToken(user) : undefined;
        return answer(res, record, user, scopeValues, refresh);
      }
      if (grantType === 'refresh_token') {
        const presented = form.get('refresh_token') ?? '';
        const user = refreshTokens.get(presented);
        if (!opts.refreshTokens || user === undefined) return fail(401, { error: 'invalid_grant', error_description: 'unknown refresh token' });
        record.user = user;
        // oauth.md: a refresh grant returns the same refresh token, not a new one.
        return answer(res, record, user, scopeValues, presented);
      }
      return fail(400, { error: 'unsupported_grant_type' });
    }

    return fail(405, { error: 'method_not_allowed' }, { allow: 'GET, POST' });
  }

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err) });
      else res.destroy();
    });
  };
  const server = opts.tls
    ? createHttpsServer({ cert: await readFile(opts.tls.cert), key: await readFile(opts.tls.key) }, listener)
    : createServer(listener);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    realm: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/token`,
    rootCertBundle: chain.caCert,
    service: opts.service,
    issuer: opts.issuer,
    requests,
    mint,
    revokeRefreshToken: (t) => void refreshTokens.delete(t),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
