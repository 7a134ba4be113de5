import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRegistryClient } from '../../../src/registry/client.js';
import { KitError } from '../../../src/errors.js';
import { basic, isolateEnv, json, startServer, type TestServer } from './servers.js';

const servers: TestServer[] = [];
before(isolateEnv);
after(() => Promise.all(servers.map((s) => s.close())));

async function server(handler: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(handler);
  servers.push(s);
  return s;
}

const USER = 'bob';
const PASS = 'redirect-Secret-99';

/** A registry that wants Basic auth and redirects blob GETs to `target`. */
async function redirectingRegistry(target: (path: string) => string, status = 307): Promise<TestServer> {
  return server((s, res) => {
    if (s.headers.authorization !== basic(USER, PASS)) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' });
      return res.end();
    }
    if (s.url.startsWith('/v2/a/blobs/')) {
      res.writeHead(status, { location: target(s.url) });
      return res.end();
    }
    json(res, 200, { at: 'registry', url: s.url });
  });
}

function client(reg: TestServer) {
  return createRegistryClient(reg.host, { settings: { plainHttp: true }, credentials: async () => ({ username: USER, password: PASS }), baseDelayMs: 1 });
}

describe('redirects', () => {
  it('carries no Authorization and no Cookie to another origin', async () => {
    const storage = await server((_s, res) => json(res, 200, { at: 'storage' }));
    const reg = await redirectingRegistry((p) => `${storage.origin}/bucket${p}?X-Signature=abc`);
    const c = await client(reg);
    const r = await c.request({ method: 'GET', url: '/v2/a/blobs/sha256:1', scopes: [], followRedirects: true, headers: { Cookie: 'session=registry-cookie' } });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(await r.text()), { at: 'storage' });
    assert.equal(r.url, `${storage.origin}/bucket/v2/a/blobs/sha256:1?X-Signature=abc`);
    // The registry did get the credentials and the caller's cookie ...
    const last = reg.seen.at(-1)!;
    assert.equal(last.headers.authorization, basic(USER, PASS));
    assert.equal(last.headers.cookie, 'session=registry-cookie');
    // ... the storage server, another origin (another port on the same host), got neither.
    assert.equal(storage.seen.length, 1);
    assert.equal(storage.seen[0]?.headers.authorization, undefined);
    assert.equal(storage.seen[0]?.headers.cookie, undefined);
  });

  it('keeps Authorization on a same-origin redirect', async () => {
    const reg = await redirectingRegistry((p) => p.replace('/blobs/', '/elsewhere/'));
    const c = await client(reg);
    const r = await c.request({ method: 'GET', url: '/v2/a/blobs/sha256:1', scopes: [], followRedirects: true });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(await r.text()), { at: 'registry', url: '/v2/a/elsewhere/sha256:1' });
    assert.equal(reg.seen.at(-1)?.headers.authorization, basic(USER, PASS));
  });

  it('does not answer a 401 from the redirect target with the registry credentials', async () => {
    const storage = await server((_s, res) => {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="storage"' });
      res.end();
    });
    const reg = await redirectingRegistry((p) => `${storage.origin}${p}`);
    const c = await client(reg);
    const r = await c.request({ method: 'GET', url: '/v2/a/blobs/sha256:1', scopes: [], followRedirects: true });
    await r.dump();
    assert.equal(r.status, 401);
    assert.equal(storage.seen.length, 1);
    assert.equal(storage.seen[0]?.headers.authorization, undefined);
  });

  it('returns the redirect itself unless asked to follow', async () => {
    const reg = await redirectingRegistry(() => 'http://127.0.0.1:1/x');
    const c = await client(reg);
    const r = await c.request({ method: 'GET', url: '/v2/a/blobs/sha256:1', scopes: [] });
    await r.dump();
    assert.equal(r.status, 307);
    assert.equal(r.headers['location'], 'http://127.0.0.1:1/x');
  });

  for (const location of ['file:///etc/passwd', 'ftp://127.0.0.1/x', 'javascript:alert(1)']) {
    it(`refuses to follow ${location}`, async () => {
      const reg = await redirectingRegistry(() => location);
      const c = await client(reg);
      await assert.rejects(c.request({ method: 'GET', url: '/v2/a/blobs/sha256:1', scopes: [], followRedirects: true }), (e: unknown) => e instanceof KitError && e.code === 'INSECURE_REDIRECT');
    });
  }

  it('gives up after 5 hops', async () => {
    let n = 0;
    const loop = await server((_s, res) => {
      res.writeHead(302, { location: `/hop/${++n}` });
      res.end();
    });
    const c = await createRegistryClient(loop.host, { settings: { plainHttp: true }, credentials: async () => undefined });
    await assert.rejects(c.request({ method: 'GET', url: '/v2/', scopes: [], followRedirects: true }), (e: unknown) => e instanceof KitError && e.code === 'TOO_MANY_REDIRECTS');
    assert.equal(loop.seen.length, 6);
  });

  it('turns a 303 into a GET without body', async () => {
    const reg = await server((s, res) => {
      if (s.url === '/v2/post') {
        res.writeHead(303, { location: '/v2/result' });
        return res.end();
      }
      json(res, 200, { method: s.method, body: s.body });
    });
    const c = await createRegistryClient(reg.host, { settings: { plainHttp: true }, credentials: async () => undefined });
    const r = await c.request({ method: 'POST', url: '/v2/post', scopes: [], body: 'payload', followRedirects: true });
    assert.deepEqual(JSON.parse(await r.text()), { method: 'GET', body: '' });
  });
});
