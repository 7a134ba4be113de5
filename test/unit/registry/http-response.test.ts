import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRegistryClient } from '../../../src/registry/client.js';
import { KitError } from '../../../src/errors.js';
import { isolateEnv, startServer, type TestServer } from './servers.js';

const servers: TestServer[] = [];
before(isolateEnv);
after(() => Promise.all(servers.map((s) => s.close())));

describe('responses', () => {
  it('lower-cases header names, joins repeated headers and sends a kit user agent', async () => {
    const reg = await startServer((_s, res) => {
      res.setHeader('Docker-Content-Digest', 'sha256:abc');
      res.setHeader('X-Multi', ['a', 'b']);
      res.end('hello');
    });
    servers.push(reg);
    const c = await createRegistryClient(reg.host, { settings: { plainHttp: true }, credentials: async () => undefined });
    const r = await c.request({ method: 'GET', url: '/v2/x', scopes: [], headers: { Accept: 'application/json' } });
    assert.equal(r.headers['docker-content-digest'], 'sha256:abc');
    assert.equal(r.headers['x-multi'], 'a, b');
    assert.equal(r.url, `${reg.origin}/v2/x`);
    assert.equal(await r.text(), 'hello');
    assert.match(String(reg.seen[0]?.headers['user-agent']), /^kit\//);
    assert.equal(reg.seen[0]?.headers['accept'], 'application/json');
  });

  it('refuses to read more text than allowed', async () => {
    const reg = await startServer((_s, res) => res.end('x'.repeat(10_000)));
    servers.push(reg);
    const c = await createRegistryClient(reg.host, { settings: { plainHttp: true }, credentials: async () => undefined });
    const r = await c.request({ method: 'GET', url: '/v2/big', scopes: [] });
    await assert.rejects(r.text(1000), (e: unknown) => e instanceof KitError && e.code === 'RESPONSE_TOO_LARGE');
  });

  it('takes a custom user agent and refuses non-http URLs', async () => {
    const reg = await startServer((_s, res) => res.end());
    servers.push(reg);
    const c = await createRegistryClient(reg.host, { settings: { plainHttp: true }, credentials: async () => undefined, userAgent: 'kit-test/1' });
    await (await c.request({ method: 'HEAD', url: '/v2/', scopes: [] })).dump();
    assert.equal(reg.seen[0]?.headers['user-agent'], 'kit-test/1');
    await assert.rejects(c.request({ method: 'GET', url: 'file:///etc/passwd', scopes: [] }), (e: unknown) => e instanceof KitError && e.code === 'REQUEST_INVALID');
  });
});
