import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { createRegistryClient } from '../../../src/registry/client.js';
import type { Credential } from '../../../src/registry/credentials/types.js';
import type { RegistryClient } from '../../../src/registry/types.js';
import { KitError } from '../../../src/errors.js';
import { basic, isolateEnv, json, startServer, type Seen, type TestServer } from './servers.js';

const USER = 'alice';
const PASS = 'S3cret-Pa55word!';
const REFRESH = 'refresh-T0ken-xyz';
const PULL = 'repository:team/model:pull';
const PUSH = 'repository:team/model:pull,push';

const servers: TestServer[] = [];
before(isolateEnv);
after(() => Promise.all(servers.map((s) => s.close())));

async function server(handler: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(handler);
  servers.push(s);
  return s;
}

function client(reg: TestServer, cred: Credential | undefined, counter?: { lookups: number }): Promise<RegistryClient> {
  return createRegistryClient(reg.host, {
    settings: { plainHttp: true },
    credentials: async () => {
      if (counter) counter.lookups++;
      return cred;
    },
    baseDelayMs: 1,
  });
}

/**
 * A token server plus a registry that accepts the tokens it issued. Tokens carry the scopes they
 * were issued for; the registry wants `needs(req)` and answers insufficient_scope otherwise.
 */
async function tokenSetup(opts: {
  tokenResponse?: (n: number, scopes: string[]) => unknown;
  checkAuth?: (s: Seen) => boolean;
  needs?: (s: Seen) => string;
  realm?: (auth: TestServer) => string;
} = {}) {
  const issued = new Map<string, string[]>();
  const revoked = new Set<string>();
  let n = 0;
  const auth = await server((s, res) => {
    const url = new URL(s.url, 'http://x');
    let scopes: string[];
    if (s.method === 'POST') {
      const form = new URLSearchParams(s.body);
      if (form.get('grant_type') !== 'refresh_token' || form.get('refresh_token') !== REFRESH) return json(res, 401, { error: 'invalid_grant' });
      scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    } else {
      if (opts.checkAuth && !opts.checkAuth(s)) return json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: `bad credentials, you sent ${s.headers.authorization ?? 'none'}` }] });
      scopes = url.searchParams.getAll('scope');
    }
    n++;
    const token = `tok-${n}`;
    issued.set(token, scopes);
    json(res, 200, opts.tokenResponse ? opts.tokenResponse(n, scopes) : { token, expires_in: 300 });
  });
  const reg = await server((s, res) => {
    const need = opts.needs ? opts.needs(s) : PULL;
    const h = s.headers.authorization ?? '';
    const token = h.startsWith('Bearer ') ? h.slice(7) : '';
    const granted = issued.get(token);
    const realm = opts.realm ? opts.realm(auth) : `${auth.origin}/token`;
    if (!granted || revoked.has(token)) {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="test-registry",scope="${need}"` });
      return res.end();
    }
    if (!granted.includes(need)) {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="test-registry",scope="${need}",error="insufficient_scope"` });
      return res.end();
    }
    json(res, 200, { ok: true });
  });
  return { auth, reg, issued, revoked };
}

const unauthorizedOnRegistry = (reg: TestServer): number => reg.seen.filter((s) => !s.headers.authorization).length;

describe('Basic auth', () => {
  it('answers a Basic challenge, then sends Basic up front', async () => {
    const reg = await server((s, res) => {
      if (s.headers.authorization !== basic(USER, PASS)) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="kit test"' });
        return res.end();
      }
      json(res, 200, {});
    });
    const c = await client(reg, { username: USER, password: PASS });
    const r1 = await c.request({ method: 'GET', url: '/v2/', scopes: [] });
    await r1.dump();
    const r2 = await c.request({ method: 'GET', url: '/v2/team/model/tags/list', scopes: [PULL] });
    await r2.dump();
    assert.equal(r1.status, 200);
    assert.equal(r2.status, 200);
    assert.equal(reg.seen.length, 3, 'one 401 in all');
    assert.equal(reg.seen[2]?.headers.authorization, basic(USER, PASS));
  });

  it('returns the 401 when the credentials are refused, without asking twice', async () => {
    const reg = await server((_s, res) => {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="kit test"' });
      res.end();
    });
    const c = await client(reg, { username: USER, password: 'wrong' });
    const r = await c.request({ method: 'GET', url: '/v2/', scopes: [] });
    await r.dump();
    assert.equal(r.status, 401);
    assert.equal(reg.seen.length, 2);
  });

  it('returns the 401 when there are no credentials', async () => {
    const reg = await server((_s, res) => {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="kit test"' });
      res.end();
    });
    const c = await client(reg, undefined);
    const r = await c.request({ method: 'GET', url: '/v2/', scopes: [] });
    await r.dump();
    assert.equal(r.status, 401);
    assert.equal(reg.seen.length, 1);
  });
});

describe('Bearer auth', () => {
  it('gets a token with Basic credentials, service and scope, and reuses it', async () => {
    const { auth, reg } = await tokenSetup({ checkAuth: (s) => s.headers.authorization === basic(USER, PASS) });
    const c = await client(reg, { username: USER, password: PASS });
    for (let i = 0; i < 3; i++) {
      const r = await c.request({ method: 'GET', url: '/v2/team/model/manifests/1', scopes: [PULL] });
      await r.dump();
      assert.equal(r.status, 200);
    }
    assert.equal(auth.seen.length, 1, 'one token request');
    const q = new URL(auth.seen[0]!.url, 'http://x').searchParams;
    assert.equal(q.get('service'), 'test-registry');
    assert.deepEqual(q.getAll('scope'), [PULL]);
    assert.equal(unauthorizedOnRegistry(reg), 1, 'a single 401 round trip');
    assert.equal(reg.seen.length, 4);
  });

  it('asks for a new scope set up front once the scheme is known', async () => {
    const { auth, reg } = await tokenSetup({ needs: (s) => (s.method === 'POST' ? PUSH : PULL) });
    const c = await client(reg, { username: USER, password: PASS });
    await (await c.request({ method: 'GET', url: '/v2/team/model/manifests/1', scopes: [PULL] })).dump();
    const r = await c.request({ method: 'POST', url: '/v2/team/model/blobs/uploads/', scopes: ['repository:team/model:push', PULL] });
    await r.dump();
    assert.equal(r.status, 200);
    assert.equal(auth.seen.length, 2);
    assert.deepEqual(new URL(auth.seen[1]!.url, 'http://x').searchParams.getAll('scope'), [PUSH]);
    assert.equal(unauthorizedOnRegistry(reg), 1, 'the POST went out authorized');
  });

  it('fetches an anonymous token when there are no credentials', async () => {
    const { auth, reg } = await tokenSetup();
    const c = await client(reg, undefined);
    const r = await c.request({ method: 'GET', url: '/v2/team/model/manifests/1', scopes: [PULL] });
    await r.dump();
    assert.equal(r.status, 200);
    assert.equal(auth.seen.length, 1);
    assert.equal(auth.seen[0]?.headers.authorization, undefined);
  });

  it('uses an identity token with the OAuth2 refresh_token grant', async () => {
    const { auth, reg } = await tokenSetup({ tokenResponse: (n) => ({ access_token: `tok-${n}`, expires_in: 300 }) });
    const c = await client(reg, { username: USER, identityToken: REFRESH });
    const r = await c.request({ method: 'GET', url: '/v2/team/model/manifests/1', scopes: [PULL] });
    await r.dump();
    assert.equal(r.status, 200);
    const seen = auth.seen[0]!;
    assert.equal(seen.method, 'POST');
    assert.match(String(seen.headers['content-type']), /application\/x-www-form-urlencoded/);
    const form = new URLSearchParams(seen.body);
    assert.equal(form.get('grant_type'), 'refresh_token');
    assert.equal(form.get('refresh_token'), REFRESH);
    assert.equal(form.get('service'), 'test-registry');
    assert.equal(form.get('scope'), PULL);
    assert.equal(form.get('client_id'), 'kit');
    assert.equal(seen.headers.authorization, undefined, 'the refresh token travels in the form only');
  });

  it('answers insufficient_scope with a token for the union of scopes', async () => {
    const { auth, reg } = await tokenSetup({ needs: (s) => (s.method === 'PUT' ? PUSH : PULL) });
    const c = await client(reg, { username: USER, password: PASS });
    await (await c.request({ method: 'GET', url: '/v2/team/model/manifests/1', scopes: [PULL] })).dump();
    // The caller under-declares its scopes; the registry says what it needs.
    const r = await c.request({ method: 'PUT', url: '/v2/team/model/manifests/1', scopes: [PULL], body: '{}' });
    await r.dump();
    assert.equal(r.status, 200);
    assert.equal(auth.seen.length, 2);
    assert.deepEqual(new URL(auth.seen[1]!.url, 'http://x').searchParams.getAll('scope'), [PUSH]);
    const puts = reg.seen.filter((s) => s.method === 'PUT');
    assert.equal(puts.length, 2);
    assert.equal(puts[1]?.body, '{}', 'the body is sent again');
  });

  it('refreshes a token the registry stops accepting', async () => {
    const { auth, reg, revoked } = await tokenSetup();
    const c = await client(reg, { username: USER, password: PASS });
    await (await c.request({ method: 'GET', url: '/v2/x', scopes: [PULL] })).dump();
    revoked.add('tok-1');
    const r = await c.request({ method: 'GET', url: '/v2/x', scopes: [PULL] });
    await r.dump();
    assert.equal(r.status, 200);
    assert.equal(auth.seen.length, 2);
    assert.equal(reg.seen.at(-1)?.headers.authorization, 'Bearer tok-2');
  });

  it('gets a new token up front when the cached one has expired', async () => {
    const { auth, reg } = await tokenSetup({ tokenResponse: (n) => ({ token: `tok-${n}`, expires_in: 1 }) });
    const c = await client(reg, { username: USER, password: PASS });
    await (await c.request({ method: 'GET', url: '/v2/x', scopes: [PULL] })).dump();
    await new Promise((r) => setTimeout(r, 1000));
    const r = await c.request({ method: 'GET', url: '/v2/x', scopes: [PULL] });
    await r.dump();
    assert.equal(r.status, 200);
    assert.equal(auth.seen.length, 2);
    assert.equal(unauthorizedOnRegistry(reg), 1, 'no 401 for the expired token: it was not sent');
    assert.equal(reg.seen.at(-1)?.headers.authorization, 'Bearer tok-2');
  });

  it('returns the 401 when a fresh token is refused too', async () => {
    const { auth, reg, revoked } = await tokenSetup();
    revoked.add('tok-1');
    revoked.add('tok-2');
    const c = await client(reg, { username: USER, password: PASS });
    const r = await c.request({ method: 'GET', url: '/v2/x', scopes: [PULL] });
    await r.dump();
    assert.equal(r.status, 401);
    assert.equal(auth.seen.length, 1);
    assert.equal(reg.seen.length, 2);
  });

  it('uses a registry token as the bearer token directly', async () => {
    const reg = await server((s, res) => {
      if (s.headers.authorization !== 'Bearer reg-token-1') {
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="http://127.0.0.1:1/never",service="s"' });
        return res.end();
      }
      json(res, 200, {});
    });
    const c = await client(reg, { registryToken: 'reg-token-1' });
    const r = await c.request({ method: 'GET', url: '/v2/', scopes: [] });
    await r.dump();
    assert.equal(r.status, 200);
  });

  it('shares one token fetch and one credential lookup between concurrent requests', async () => {
    const { auth, reg } = await tokenSetup();
    const counter = { lookups: 0 };
    const c = await client(reg, { username: USER, password: PASS }, counter);
    const rs = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => c.request({ method: 'GET', url: `/v2/team/model/blobs/${i}`, scopes: [PULL] })));
    await Promise.all(rs.map((r) => r.dump()));
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
    assert.equal(auth.seen.length, 1);
    assert.equal(counter.lookups, 1);
  });

  it('learns the challenge on a non-replayable upload and authorizes the next one up front', async () => {
    const { auth, reg } = await tokenSetup({ needs: () => PUSH });
    const c = await client(reg, { username: USER, password: PASS });
    let streams = 0;
    const upload = () =>
      c.request({
        method: 'PATCH',
        url: '/v2/team/model/blobs/uploads/u1',
        scopes: [PUSH],
        stream: () => {
          streams++;
          return Readable.from([Buffer.from('data')]);
        },
        retry: false,
      });
    const r1 = await upload();
    await r1.dump();
    assert.equal(r1.status, 401, 'the body cannot be sent twice');
    const r2 = await upload();
    await r2.dump();
    assert.equal(r2.status, 200);
    assert.equal(streams, 2);
    assert.equal(auth.seen.length, 1);
  });
});

describe('Bearer auth failures', () => {
  it('refuses a token response without a token', async () => {
    const { reg } = await tokenSetup({ tokenResponse: () => ({ expires_in: 60 }) });
    const c = await client(reg, undefined);
    await assert.rejects(c.request({ method: 'GET', url: '/v2/x', scopes: [PULL] }), (e: unknown) => e instanceof KitError && e.code === 'AUTH_TOKEN_INVALID');
  });

  it('refuses a token that would break the Authorization header', async () => {
    const { reg } = await tokenSetup({ tokenResponse: () => ({ token: 'abc\r\nX-Evil: 1' }) });
    const c = await client(reg, undefined);
    await assert.rejects(c.request({ method: 'GET', url: '/v2/x', scopes: [PULL] }), (e: unknown) => e instanceof KitError && e.code === 'AUTH_TOKEN_INVALID');
  });

  for (const realm of ['file:///etc/passwd', 'ftp://127.0.0.1/token', 'not a url', 'http://user:pw@127.0.0.1/token']) {
    it(`refuses the realm ${realm} and sends nothing`, async () => {
      const { auth, reg } = await tokenSetup({ realm: () => realm });
      const c = await client(reg, { username: USER, password: PASS });
      await assert.rejects(c.request({ method: 'GET', url: '/v2/x', scopes: [PULL] }), (e: unknown) => {
        assert.ok(e instanceof KitError && e.code === 'AUTH_REALM_INVALID', String(e));
        assert.ok(!e.message.includes(PASS));
        return true;
      });
      assert.equal(auth.seen.length, 0);
    });
  }

  it('reports refused credentials without the password, even when the server echoes it', async () => {
    const { reg } = await tokenSetup({ checkAuth: () => false });
    const c = await client(reg, { username: USER, password: PASS });
    await assert.rejects(c.request({ method: 'GET', url: '/v2/x', scopes: [PULL] }), (e: unknown) => {
      assert.ok(e instanceof KitError && e.code === 'UNAUTHORIZED', String(e));
      const all = `${e.message} ${e.hint ?? ''}`;
      assert.ok(!all.includes(PASS), all);
      assert.ok(!all.includes(Buffer.from(`${USER}:${PASS}`).toString('base64')), all);
      assert.match(e.hint ?? '', /kit login/);
      return true;
    });
  });

  it('refuses a malformed challenge', async () => {
    const reg = await server((_s, res) => {
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="unterminated' });
      res.end();
    });
    const c = await client(reg, undefined);
    await assert.rejects(c.request({ method: 'GET', url: '/v2/', scopes: [] }), (e: unknown) => e instanceof KitError && e.code === 'AUTH_CHALLENGE_INVALID');
  });
});

describe('credentials stay with their origin', () => {
  it('sends Basic credentials to the realm, never the bearer token', async () => {
    const { auth, reg } = await tokenSetup();
    const c = await client(reg, { username: USER, password: PASS });
    await (await c.request({ method: 'GET', url: '/v2/x', scopes: [PULL] })).dump();
    // An absolute URL on the token server's origin (e.g. an upload Location elsewhere).
    await (await c.request({ method: 'GET', url: `${auth.origin}/elsewhere`, scopes: [PULL] })).dump();
    assert.equal(auth.seen[0]?.headers.authorization, basic(USER, PASS));
    const elsewhere = auth.seen.find((s) => s.url === '/elsewhere');
    assert.ok(elsewhere);
    assert.equal(elsewhere.headers.authorization, undefined);
  });

  it('does not answer a challenge from another origin', async () => {
    const { auth, reg } = await tokenSetup();
    const other = await server((_s, res) => {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${auth.origin}/token",service="evil"` });
      res.end();
    });
    const c = await client(reg, { username: USER, password: PASS });
    const r = await c.request({ method: 'GET', url: `${other.origin}/v2/x`, scopes: [PULL] });
    await r.dump();
    assert.equal(r.status, 401);
    assert.equal(auth.seen.length, 0, 'no credentials went to the realm it named');
    assert.equal(other.seen.length, 1);
  });
});
