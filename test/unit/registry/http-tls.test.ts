import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRegistryClient } from '../../../src/registry/client.js';
import { saveRegistrySettings } from '../../../src/registry/settings.js';
import { KitError } from '../../../src/errors.js';
import { isolateEnv, json, makeCert, startServer, type TestCert, type TestServer } from './servers.js';

const servers: TestServer[] = [];
let cert: TestCert;
before(async () => {
  await isolateEnv();
  cert = await makeCert();
});
after(() => Promise.all(servers.map((s) => s.close())));

async function server(handler: Parameters<typeof startServer>[0], tls = false): Promise<TestServer> {
  const s = await startServer(handler, tls ? cert : undefined);
  servers.push(s);
  return s;
}

const anon = { credentials: async () => undefined, baseDelayMs: 1 };
const ok = (_s: unknown, res: Parameters<typeof json>[0]): void => json(res, 200, { ok: true });

describe('TLS', () => {
  it('refuses an untrusted certificate with a clear error', async () => {
    const reg = await server(ok, true);
    const c = await createRegistryClient(reg.host, anon);
    assert.equal(c.baseUrl, reg.origin, 'a loopback registry speaking TLS stays on https');
    await assert.rejects(c.request({ method: 'GET', url: '/v2/', scopes: [] }), (e: unknown) => {
      assert.ok(e instanceof KitError && e.code === 'TLS_VERIFY_FAILED', String(e));
      assert.match(e.message, /not trusted/);
      assert.match(e.message, new RegExp(reg.host.replace(/\./g, '\\.')));
      assert.match(e.hint ?? '', /caCert/);
      return true;
    });
    assert.equal(reg.seen.length, 0);
  });

  it('trusts the certificate given as caCert', async () => {
    const reg = await server(ok, true);
    const c = await createRegistryClient(reg.host, { ...anon, settings: { caCert: cert.certPath } });
    const r = await c.request({ method: 'GET', url: '/v2/', scopes: [] });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(await r.text()), { ok: true });
  });

  it('reads caCert from the per-registry settings file', async () => {
    const reg = await server(ok, true);
    await saveRegistrySettings(reg.host, { caCert: cert.certPath });
    const c = await createRegistryClient(reg.host, anon);
    const r = await c.request({ method: 'GET', url: '/v2/', scopes: [] });
    await r.dump();
    assert.equal(r.status, 200);
  });

  it('skips verification only when tlsVerify is false', async () => {
    const reg = await server(ok, true);
    const c = await createRegistryClient(reg.host, { ...anon, settings: { tlsVerify: false } });
    const r = await c.request({ method: 'GET', url: '/v2/', scopes: [] });
    await r.dump();
    assert.equal(r.status, 200);
  });

  it('names a missing CA file', async () => {
    await assert.rejects(createRegistryClient('127.0.0.1:9', { ...anon, settings: { caCert: '/nonexistent/ca.pem', plainHttp: false } }), (e: unknown) => e instanceof KitError && e.code === 'TLS_CONFIG_INVALID' && e.message.includes('/nonexistent/ca.pem'));
  });

  it('refuses a redirect from https to plain http', async () => {
    const plain = await server(ok);
    const reg = await server((_s, res) => {
      res.writeHead(307, { location: `${plain.origin}/blob` });
      res.end();
    }, true);
    const c = await createRegistryClient(reg.host, { ...anon, settings: { caCert: cert.certPath } });
    await assert.rejects(c.request({ method: 'GET', url: '/v2/a/blobs/sha256:1', scopes: [], followRedirects: true }), (e: unknown) => e instanceof KitError && e.code === 'INSECURE_REDIRECT');
    assert.equal(plain.seen.length, 0);
  });

  it('refuses a plain-http token realm for an https registry, sending nothing', async () => {
    const tokenServer = await server((_s, res) => json(res, 200, { token: 't' }));
    const reg = await server((_s, res) => {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokenServer.origin}/token",service="s"` });
      res.end();
    }, true);
    const c = await createRegistryClient(reg.host, { settings: { caCert: cert.certPath }, credentials: async () => ({ username: 'u', password: 'tls-secret-pw' }) });
    await assert.rejects(c.request({ method: 'GET', url: '/v2/', scopes: [] }), (e: unknown) => e instanceof KitError && e.code === 'AUTH_REALM_INVALID' && !e.message.includes('tls-secret-pw'));
    assert.equal(tokenServer.seen.length, 0);
  });
});

describe('loopback registries', () => {
  it('fall back to plain http when the server does not speak TLS', async () => {
    const reg = await server(ok);
    const c = await createRegistryClient(reg.host, anon);
    assert.equal(c.baseUrl, reg.origin);
    const r = await c.request({ method: 'GET', url: '/v2/', scopes: [] });
    await r.dump();
    assert.equal(r.status, 200);
    // Remembered for the process: a second client does not need to probe again, and agrees.
    const c2 = await createRegistryClient(reg.host, anon);
    assert.equal(c2.baseUrl, reg.origin);
  });

  it('stay on https when the user said plainHttp: false', async () => {
    const reg = await server(ok);
    const c = await createRegistryClient(`localhost:${reg.port}`, { ...anon, settings: { plainHttp: false } });
    assert.equal(c.baseUrl, `https://localhost:${reg.port}`);
    await assert.rejects(c.request({ method: 'GET', url: '/v2/', scopes: [] }), (e: unknown) => e instanceof KitError && e.code === 'TLS_HANDSHAKE_FAILED' && /plainHttp/.test(e.hint ?? ''));
  });

  it('do not apply to other hosts', async () => {
    const c = await createRegistryClient('registry.example.com:5000', anon);
    assert.equal(c.baseUrl, 'https://registry.example.com:5000');
    const hub = await createRegistryClient('docker.io', anon);
    assert.equal(hub.baseUrl, 'https://registry-1.docker.io');
    assert.equal(hub.registry, 'docker.io');
  });
});
