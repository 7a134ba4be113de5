import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { createRegistryClient } from '../../../src/registry/client.js';
import { isolateEnv, json, startServer, type TestServer } from './servers.js';

const servers: TestServer[] = [];
const closers: Array<() => Promise<void>> = [];
before(isolateEnv);
after(() => Promise.all([...servers.map((s) => s.close()), ...closers.map((c) => c())]));

/**
 * A CONNECT proxy that records the targets asked for and tunnels every one of them to
 * `upstreamPort` on 127.0.0.1, so a made-up host name reaches the local test registry.
 */
async function connectProxy(upstreamPort: number): Promise<{ url: string; targets: string[] }> {
  const targets: string[] = [];
  const sockets = new Set<net.Socket>();
  const proxy = http.createServer((_req, res) => {
    res.statusCode = 405;
    res.end();
  });
  proxy.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    targets.push(req.url ?? '');
    const upstream = net.connect(upstreamPort, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        proxy.closeAllConnections();
        proxy.close(() => r());
      }),
  );
  return { url: `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`, targets };
}

describe('proxies', () => {
  it('goes through the proxy named in the settings', async () => {
    const reg = await startServer((_s, res) => json(res, 200, { via: 'proxy' }));
    servers.push(reg);
    const proxy = await connectProxy(reg.port);
    const c = await createRegistryClient('registry.invalid:5000', {
      settings: { plainHttp: true, proxy: proxy.url },
      credentials: async () => undefined,
    });
    const r = await c.request({ method: 'GET', url: '/v2/', scopes: [] });
    assert.deepEqual(JSON.parse(await r.text()), { via: 'proxy' });
    assert.deepEqual(proxy.targets, ['registry.invalid:5000']);
    assert.equal(reg.seen[0]?.headers.host, 'registry.invalid:5000');
  });

  it('honours HTTP_PROXY and NO_PROXY from the environment', async () => {
    const reg = await startServer((_s, res) => json(res, 200, {}));
    servers.push(reg);
    const proxy = await connectProxy(reg.port);
    process.env['HTTP_PROXY'] = proxy.url;
    process.env['NO_PROXY'] = 'direct.invalid';
    try {
      const c = await createRegistryClient('proxied.invalid', { settings: { plainHttp: true }, credentials: async () => undefined, maxAttempts: 1 });
      const r = await c.request({ method: 'GET', url: '/v2/', scopes: [] });
      await r.dump();
      assert.equal(r.status, 200);
      assert.deepEqual(proxy.targets, ['proxied.invalid:80']);
      // NO_PROXY: a direct connection, which fails for a made-up host; the proxy saw nothing new.
      const direct = await createRegistryClient('direct.invalid', { settings: { plainHttp: true }, credentials: async () => undefined, maxAttempts: 1 });
      await assert.rejects(direct.request({ method: 'GET', url: '/v2/', scopes: [] }));
      assert.deepEqual(proxy.targets, ['proxied.invalid:80']);
      // Loopback registries never go through an environment proxy.
      const local = await createRegistryClient(reg.host, { settings: { plainHttp: true }, credentials: async () => undefined });
      await (await local.request({ method: 'GET', url: '/v2/', scopes: [] })).dump();
      assert.deepEqual(proxy.targets, ['proxied.invalid:80']);
    } finally {
      delete process.env['HTTP_PROXY'];
      delete process.env['NO_PROXY'];
    }
  });
});
