/**
 * Proves each registry setup is what it claims, with plain undici requests against the real
 * distribution server: anonymous HTTP, TLS + Basic (and mutual TLS), and token auth.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { registrySkipReason } from './harness/registry-server.js';
import { startSetup, TOKEN_ISSUER, TOKEN_SERVICE, type Setup } from './harness/setups.js';

type Headers = Record<string, string | string[] | undefined>;

async function call(url: string, init: { method?: Dispatcher.HttpMethod; headers?: Record<string, string>; body?: string | Buffer; dispatcher?: Dispatcher } = {}): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await request(url, { method: init.method ?? 'GET', headers: init.headers, body: init.body, dispatcher: init.dispatcher });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** Parse `Bearer realm="..",service="..",scope=".."` into its parameters. */
function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(' ');
  const params: Record<string, string> = {};
  for (const m of header.slice(space + 1).matchAll(/(\w+)="([^"]*)"/g)) params[m[1]!] = m[2]!;
  return { scheme: header.slice(0, space), params };
}

// Without a registry binary (and no way to install it) the suites are skipped loudly, not failed.
const skip = await registrySkipReason();

describe('plain setup', { skip }, () => {
  let setup: Setup;
  before(async () => (setup = await startSetup('plain')));
  after(() => setup.stop());

  it('answers /v2/ anonymously over HTTP', async () => {
    assert.match(setup.registry.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const r = await call(`${setup.registry.url}/v2/`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  it('accepts an anonymous upload', async () => {
    const r = await call(`${setup.registry.url}/v2/any/repo/blobs/uploads/`, { method: 'POST' });
    assert.equal(r.status, 202);
    assert.ok(r.headers.location);
  });
});

describe('tls-basic setup', { skip }, () => {
  let setup: Setup;
  let trusting: Agent;
  before(async () => {
    setup = await startSetup('tls-basic');
    trusting = new Agent({ connect: { ca: await readFile(setup.caCert!) } });
  });
  after(async () => {
    await trusting.close();
    await setup.stop();
  });

  it('serves HTTPS with a certificate the test CA vouches for', async () => {
    assert.match(setup.registry.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(setup.users, { alice: 'wonderland' });
    // Without the CA, Node's default trust store must refuse the certificate.
    await assert.rejects(call(`${setup.registry.url}/v2/`), (err: Error & { code?: string; cause?: { code?: string } }) => {
      const code = err.code ?? err.cause?.code ?? '';
      return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code);
    });
  });

  it('answers 401 with a Basic challenge without credentials', async () => {
    const r = await call(`${setup.registry.url}/v2/`, { dispatcher: trusting });
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate']), /^Basic realm="kit-test"/);
  });

  it('answers 200 to the right Basic credentials and 401 to a wrong password', async () => {
    const ok = await call(`${setup.registry.url}/v2/`, { dispatcher: trusting, headers: { authorization: basic('alice', 'wonderland') } });
    assert.equal(ok.status, 200);
    const bad = await call(`${setup.registry.url}/v2/`, { dispatcher: trusting, headers: { authorization: basic('alice', 'looking-glass') } });
    assert.equal(bad.status, 401);
  });

  it('lets an authenticated client start an upload', async () => {
    const r = await call(`${setup.registry.url}/v2/team/model/blobs/uploads/`, { method: 'POST', dispatcher: trusting, headers: { authorization: basic('alice', 'wonderland') } });
    assert.equal(r.status, 202);
  });

  it('is also reachable as localhost (SAN DNS)', async () => {
    const port = new URL(setup.registry.url).port;
    const r = await call(`https://localhost:${port}/v2/`, { dispatcher: trusting, headers: { authorization: basic('alice', 'wonderland') } });
    assert.equal(r.status, 200);
  });
});

/**
 * Blocked on registry-server.ts, not on the registry: with `clientcas` Go demands a client
 * certificate in every handshake, so startRegistry's readiness probe (no client certificate)
 * never sees /v2/ answer and gives up. The PKI and setup side are ready; unskip once the probe
 * can present the test client certificate or counts a "certificate required" alert as up.
 */
describe('tls-basic setup with mutual TLS', { skip }, () => {
  let setup: Setup;
  before(async () => (setup = await startSetup('tls-basic', { mutualTls: true, users: { bob: 'builder' } })));
  after(() => setup.stop());

  it('refuses a client without a certificate and accepts one with the test client certificate', async () => {
    const ca = await readFile(setup.caCert!);
    const anonymous = new Agent({ connect: { ca } });
    const withCert = new Agent({ connect: { ca, cert: await readFile(setup.clientCert!), key: await readFile(setup.clientKey!) } });
    try {
      await assert.rejects(call(`${setup.registry.url}/v2/`, { dispatcher: anonymous, headers: { authorization: basic('bob', 'builder') } }));
      const r = await call(`${setup.registry.url}/v2/`, { dispatcher: withCert, headers: { authorization: basic('bob', 'builder') } });
      assert.equal(r.status, 200);
    } finally {
      await anonymous.close();
      await withCert.close();
    }
  });
});

describe('token setup', { skip }, () => {
  let setup: Setup;
  before(async () => (setup = await startSetup('token')));
  after(() => setup.stop());

  async function tokenFor(scope: string[], auth?: string): Promise<string> {
    const realm = new URL(setup.token!.realm);
    realm.searchParams.set('service', TOKEN_SERVICE);
    for (const s of scope) realm.searchParams.append('scope', s);
    const r = await call(realm.href, { headers: auth ? { authorization: auth } : {} });
    assert.equal(r.status, 200, r.text);
    const body = JSON.parse(r.text) as { token: string; access_token: string; expires_in: number };
    assert.equal(body.token, body.access_token);
    assert.ok(body.expires_in >= 60, 'token.md: never less than 60 s to live');
    return body.token;
  }

  it('answers /v2/ with a Bearer challenge naming the realm and service', async () => {
    const r = await call(`${setup.registry.url}/v2/`);
    assert.equal(r.status, 401);
    const ch = parseChallenge(String(r.headers['www-authenticate']));
    assert.equal(ch.scheme, 'Bearer');
    assert.equal(ch.params.realm, setup.token!.realm);
    assert.equal(ch.params.service, TOKEN_SERVICE);
  });

  it('accepts a token fetched from the realm: GET /v2/ 200', async () => {
    const token = await tokenFor([]);
    const r = await call(`${setup.registry.url}/v2/`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200);
  });

  it('challenges with the scope an operation needs', async () => {
    const r = await call(`${setup.registry.url}/v2/public/x/blobs/uploads/`, { method: 'POST' });
    assert.equal(r.status, 401);
    const ch = parseChallenge(String(r.headers['www-authenticate']));
    // distribution builds the action list from a Go map: its order changes from run to run.
    const [type, name, actions] = (ch.params.scope ?? '').split(':');
    assert.deepEqual([type, name, actions?.split(',').sort()], ['repository', 'public/x', ['pull', 'push']]);
  });

  it('lets a push-scope token start an upload (202) but not an anonymous one', async () => {
    const alice = await tokenFor(['repository:public/x:pull,push'], basic('alice', 'wonderland'));
    const ok = await call(`${setup.registry.url}/v2/public/x/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${alice}` } });
    assert.equal(ok.status, 202);

    const anon = await tokenFor(['repository:public/x:pull,push']);
    const granted = setup.token!.requests.at(-1)!;
    assert.equal(granted.user, undefined);
    assert.deepEqual(granted.granted, [{ type: 'repository', name: 'public/x', actions: ['pull'] }]);
    const refused = await call(`${setup.registry.url}/v2/public/x/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${anon}` } });
    assert.equal(refused.status, 401);
    assert.match(String(refused.headers['www-authenticate']), /error="insufficient_scope"/);
  });

  it('gives anonymous clients nothing outside public/', async () => {
    const anon = await tokenFor(['repository:private/x:pull']);
    assert.deepEqual(setup.token!.requests.at(-1)!.granted, []);
    const r = await call(`${setup.registry.url}/v2/private/x/tags/list`, { headers: { authorization: `Bearer ${anon}` } });
    assert.equal(r.status, 401);
  });

  it('refuses a wrong password at the realm with 401', async () => {
    const r = await call(`${setup.token!.realm}?service=${TOKEN_SERVICE}&scope=repository:a/b:pull`, { headers: { authorization: basic('alice', 'nope') } });
    assert.equal(r.status, 401);
    const unknown = await call(`${setup.token!.realm}?service=${TOKEN_SERVICE}`, { headers: { authorization: basic('mallory', 'wonderland') } });
    assert.equal(unknown.status, 401);
  });

  it('takes several scope parameters and hands a refresh token to offline_token=true', async () => {
    const url = `${setup.token!.realm}?service=${TOKEN_SERVICE}&scope=repository:a/one:pull&scope=repository:a/two:pull,push&offline_token=true`;
    const r = await call(url, { headers: { authorization: basic('alice', 'wonderland') } });
    const body = JSON.parse(r.text) as { refresh_token?: string };
    assert.ok(body.refresh_token);
    assert.deepEqual(setup.token!.requests.at(-1)!.granted, [
      { type: 'repository', name: 'a/one', actions: ['pull'] },
      { type: 'repository', name: 'a/two', actions: ['pull', 'push'] },
    ]);
    const online = await call(`${setup.token!.realm}?service=${TOKEN_SERVICE}`, { headers: { authorization: basic('alice', 'wonderland') } });
    assert.equal((JSON.parse(online.text) as { refresh_token?: string }).refresh_token, undefined);
  });

  it('serves the OAuth2 POST flow with refresh tokens', async () => {
    const form = (fields: Record<string, string>): Promise<{ status: number; text: string }> =>
      call(setup.token!.realm, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });
    const first = await form({ grant_type: 'password', username: 'alice', password: 'wonderland', service: TOKEN_SERVICE, client_id: 'kit-test', access_type: 'offline', scope: 'repository:team/m:pull' });
    assert.equal(first.status, 200, first.text);
    const a = JSON.parse(first.text) as { access_token: string; refresh_token: string; scope: string };
    assert.ok(a.refresh_token);
    assert.equal(a.scope, 'repository:team/m:pull');

    const second = await form({ grant_type: 'refresh_token', refresh_token: a.refresh_token, service: TOKEN_SERVICE, client_id: 'kit-test', scope: 'repository:team/m:pull,push' });
    assert.equal(second.status, 200, second.text);
    const b = JSON.parse(second.text) as { access_token: string; refresh_token: string };
    assert.equal(b.refresh_token, a.refresh_token);
    const up = await call(`${setup.registry.url}/v2/team/m/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${b.access_token}` } });
    assert.equal(up.status, 202);

    const rec = setup.token!.requests.at(-1)!;
    assert.equal(rec.grantType, 'refresh_token');
    assert.equal(rec.user, 'alice');
    assert.equal(rec.query.refresh_token, '<redacted>');
    assert.equal((await form({ grant_type: 'password', username: 'alice', password: 'x', service: TOKEN_SERVICE, client_id: 'kit-test' })).status, 401);
    assert.equal((await form({ grant_type: 'refresh_token', refresh_token: 'forged', service: TOKEN_SERVICE, client_id: 'kit-test' })).status, 401);
  });

  it('has its tokens rejected when expired, for another audience, or from another issuer', async () => {
    const good = setup.token!.mint('alice', [{ type: 'repository', name: 'a/b', actions: ['pull', 'push'] }]);
    assert.equal((await call(`${setup.registry.url}/v2/a/b/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${good}` } })).status, 202);
    // exp an hour ago: beyond the registry's 60 s leeway.
    const expired = setup.token!.mint('alice', [{ type: 'repository', name: 'a/b', actions: ['pull', 'push'] }], -3600);
    const r = await call(`${setup.registry.url}/v2/a/b/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${expired}` } });
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate']), /error="invalid_token"/);
    for (const claims of [{ aud: 'another-registry' }, { iss: 'someone-else' }]) {
      const wrong = setup.token!.mint('alice', [{ type: 'repository', name: 'a/b', actions: ['pull', 'push'] }], 300, claims);
      const refused = await call(`${setup.registry.url}/v2/a/b/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${wrong}` } });
      assert.equal(refused.status, 401, JSON.stringify(claims));
    }
    assert.equal(setup.token!.issuer, TOKEN_ISSUER);
  });
});

describe('token setup over TLS', { skip }, () => {
  let setup: Setup;
  before(async () => (setup = await startSetup('token', { tls: true })));
  after(() => setup.stop());

  it('serves registry and realm over HTTPS trusted through the test CA', async () => {
    const agent = new Agent({ connect: { ca: await readFile(setup.caCert!) } });
    try {
      assert.match(setup.token!.realm, /^https:/);
      const ch = await call(`${setup.registry.url}/v2/`, { dispatcher: agent });
      assert.equal(ch.status, 401);
      const t = await call(`${setup.token!.realm}?service=${TOKEN_SERVICE}`, { dispatcher: agent, headers: { authorization: basic('alice', 'wonderland') } });
      const token = (JSON.parse(t.text) as { token: string }).token;
      assert.equal((await call(`${setup.registry.url}/v2/`, { dispatcher: agent, headers: { authorization: `Bearer ${token}` } })).status, 200);
    } finally {
      await agent.close();
    }
  });
});
