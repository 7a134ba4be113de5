import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Readable } from 'node:stream';
import { createRegistryClient } from '../../../src/registry/client.js';
import { backoffDelay, isRetryableStatus, parseRetryAfter } from '../../../src/registry/http.js';
import { KitError } from '../../../src/errors.js';
import { isolateEnv, json, startServer, type TestServer } from './servers.js';

const servers: TestServer[] = [];
before(isolateEnv);
after(() => Promise.all(servers.map((s) => s.close())));

/** A server that answers the listed statuses in turn (the last one from then on). */
async function sequence(statuses: Array<number | [number, Record<string, string>]>): Promise<TestServer> {
  let i = 0;
  const s = await startServer((_req, res) => {
    const step = statuses[Math.min(i++, statuses.length - 1)]!;
    const [status, headers] = Array.isArray(step) ? step : [step, {}];
    json(res, status, status < 400 ? { ok: true } : { errors: [{ code: 'UNAVAILABLE', message: 'try later' }] }, headers);
  });
  servers.push(s);
  return s;
}

const opts = { settings: { plainHttp: true }, credentials: async () => undefined, baseDelayMs: 1 };

describe('retries', () => {
  it('retries 5xx, 408 and 429 until success', async () => {
    const s = await sequence([503, 500, 408, [429, { 'retry-after': '0' }], 200]);
    const c = await createRegistryClient(s.host, opts);
    const r = await c.request({ method: 'GET', url: '/v2/', scopes: [] });
    await r.dump();
    assert.equal(r.status, 200);
    assert.equal(s.seen.length, 5);
  });

  it('returns the last response after maxAttempts', async () => {
    const s = await sequence([503]);
    const c = await createRegistryClient(s.host, { ...opts, maxAttempts: 3 });
    const r = await c.request({ method: 'GET', url: '/v2/', scopes: [] });
    assert.equal(r.status, 503);
    assert.match(await r.text(), /UNAVAILABLE/);
    assert.equal(s.seen.length, 3);
  });

  it('does not retry other 4xx or 501', async () => {
    for (const status of [400, 404, 501]) {
      const s = await sequence([status, 200]);
      const c = await createRegistryClient(s.host, opts);
      const r = await c.request({ method: 'GET', url: '/v2/', scopes: [] });
      await r.dump();
      assert.equal(r.status, status);
      assert.equal(s.seen.length, 1);
    }
  });

  it('waits as long as Retry-After says', async () => {
    const s = await sequence([[503, { 'retry-after': '1' }], 200]);
    const c = await createRegistryClient(s.host, opts);
    const t0 = Date.now();
    const r = await c.request({ method: 'GET', url: '/v2/', scopes: [] });
    await r.dump();
    assert.equal(r.status, 200);
    assert.equal(s.seen.length, 2);
    assert.ok(Date.now() - t0 >= 900, 'honoured the 1 s Retry-After');
  });

  it('sends a replayable body again on every attempt', async () => {
    const s = await sequence([502, 502, 201]);
    const c = await createRegistryClient(s.host, opts);
    const r = await c.request({ method: 'PUT', url: '/v2/a/manifests/t', scopes: [], body: Buffer.from('{"a":1}') });
    await r.dump();
    assert.equal(r.status, 201);
    assert.deepEqual(s.seen.map((x) => x.body), ['{"a":1}', '{"a":1}', '{"a":1}']);
  });

  it('calls a stream factory once per attempt', async () => {
    const s = await sequence([503, 201]);
    const c = await createRegistryClient(s.host, opts);
    let calls = 0;
    const r = await c.request({
      method: 'PUT',
      url: '/v2/a/blobs/uploads/x',
      scopes: [],
      stream: () => {
        calls++;
        return Readable.from([Buffer.from('chunk-'), Buffer.from(String(calls))]);
      },
    });
    await r.dump();
    assert.equal(r.status, 201);
    assert.equal(calls, 2);
    assert.deepEqual(s.seen.map((x) => x.body), ['chunk-1', 'chunk-2']);
  });

  it('sends a non-replayable body once', async () => {
    const s = await sequence([503, 201]);
    const c = await createRegistryClient(s.host, opts);
    let calls = 0;
    const r = await c.request({
      method: 'PATCH',
      url: '/v2/a/blobs/uploads/x',
      scopes: [],
      retry: false,
      stream: () => {
        calls++;
        return Readable.from([Buffer.from('once')]);
      },
    });
    await r.dump();
    assert.equal(r.status, 503, 'the caller gets the failure');
    assert.equal(calls, 1);
    assert.equal(s.seen.length, 1);
  });

  it('retries dropped connections, then reports the registry unreachable', async () => {
    let connections = 0;
    const srv = net.createServer((sock) => {
      connections++;
      sock.destroy();
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    try {
      const c = await createRegistryClient(`127.0.0.1:${port}`, { ...opts, maxAttempts: 3 });
      await assert.rejects(c.request({ method: 'GET', url: '/v2/', scopes: [] }), (e: unknown) => {
        assert.ok(e instanceof KitError && e.code === 'REGISTRY_UNREACHABLE', String(e));
        assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
        assert.ok(e.hint);
        return true;
      });
      assert.equal(connections, 3);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });

  it('reports a refused connection as unreachable', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const c = await createRegistryClient(`127.0.0.1:${port}`, { ...opts, maxAttempts: 2 });
    await assert.rejects(c.request({ method: 'GET', url: '/v2/', scopes: [] }), (e: unknown) => e instanceof KitError && e.code === 'REGISTRY_UNREACHABLE' && /ECONNREFUSED/.test(e.message));
  });

  it('stops waiting when the signal aborts', async () => {
    const s = await sequence([[503, { 'retry-after': '30' }], 200]);
    const c = await createRegistryClient(s.host, opts);
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('stop')), 50);
    await assert.rejects(c.request({ method: 'GET', url: '/v2/', scopes: [], signal: ac.signal }), /stop/);
    assert.equal(s.seen.length, 1);
  });
});

describe('retry policy', () => {
  it('parses Retry-After seconds and HTTP dates', () => {
    const now = Date.parse('2024-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('3', now), 3000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('Mon, 01 Jan 2024 00:00:05 GMT', now), 5000);
    assert.equal(parseRetryAfter('Sun, 31 Dec 2023 23:00:00 GMT', now), 0, 'a past date means now');
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter('-1', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });

  it('backs off exponentially with full jitter and a cap', () => {
    assert.equal(backoffDelay(1, 200, 10_000, () => 0.999999), 199);
    assert.equal(backoffDelay(3, 200, 10_000, () => 0.5), 400);
    assert.equal(backoffDelay(20, 200, 10_000, () => 0.999999), 9999);
    assert.equal(backoffDelay(4, 200, 10_000, () => 0), 0);
  });

  it('knows which statuses are worth another try', () => {
    assert.deepEqual([200, 400, 401, 404, 408, 429, 500, 501, 502, 503, 504].filter(isRetryableStatus), [408, 429, 500, 502, 503, 504]);
  });
});
