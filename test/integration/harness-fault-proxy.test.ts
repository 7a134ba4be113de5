/**
 * Each fault-proxy rule observed through plain undici requests, in front of a real (plain)
 * distribution registry.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { startFaultProxy, startBlobMirror, type FaultRule, type FaultProxy } from './harness/fault-proxy.js';
import { startSetup, type Setup } from './harness/setups.js';
import { registrySkipReason } from './harness/registry-server.js';
import { makeTestPki } from './harness/tls.js';
import { tempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

async function call(url: string, init: { method?: Dispatcher.HttpMethod; headers?: Record<string, string>; body?: Buffer | Readable; dispatcher?: Dispatcher; bodyTimeout?: number } = {}): Promise<Reply> {
  const res = await request(url, {
    method: init.method ?? 'GET',
    headers: init.headers,
    body: init.body,
    dispatcher: init.dispatcher,
    ...(init.bodyTimeout !== undefined ? { bodyTimeout: init.bodyTimeout } : {}),
  });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

const octets = { 'content-type': 'application/octet-stream' };

/** Upload a blob straight to the registry (POST then PUT ?digest=), bypassing any proxy. */
async function pushBlob(registry: string, repo: string, content: Buffer): Promise<string> {
  const digest = sha256(content);
  const start = await call(`${registry}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(start.status, 202);
  const loc = new URL(String(start.headers.location), registry);
  loc.searchParams.set('digest', digest);
  const done = await call(loc.href, { method: 'PUT', body: content, headers: octets });
  assert.equal(done.status, 201);
  return digest;
}

/** Deterministic, non-repeating-looking content (so corruption or truncation is visible). */
function content(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + (i >> 8)) & 0xff;
  return b;
}

// Without a registry binary (and no way to install it) the suite is skipped loudly, not failed.
const skip = await registrySkipReason();

describe('fault proxy', { skip }, () => {
  let setup: Setup;
  let reg: string;
  const proxies: Array<{ stop(): Promise<void> }> = [];
  let blob: Buffer;
  let digest: string;

  before(async () => {
    setup = await startSetup('plain');
    reg = setup.registry.url;
    blob = content(256 * 1024);
    digest = await pushBlob(reg, 'lib/model', blob);
  });
  after(async () => {
    for (const p of proxies) await p.stop();
    await setup.stop();
  });

  async function proxy(rules: FaultRule[], extra: { seed?: number; tls?: { cert: string; key: string } } = {}): Promise<FaultProxy> {
    const p = await startFaultProxy({ target: reg, rules, ...extra });
    proxies.push(p);
    return p;
  }
  async function mirror(): Promise<Awaited<ReturnType<typeof startBlobMirror>>> {
    const m = await startBlobMirror({ target: reg });
    proxies.push(m);
    return m;
  }
  async function startUpload(base: string, repo = 'up/load'): Promise<string> {
    const r = await call(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    assert.equal(r.status, 202);
    return String(r.headers.location);
  }

  it('forwards untouched and rewrites Location to its own origin', async () => {
    const p = await proxy([]);
    const loc = await startUpload(p.url);
    assert.ok(loc.startsWith(`${p.url}/v2/up/load/blobs/uploads/`), loc);
    const r = await call(`${p.url}/v2/lib/model/blobs/${digest}`);
    assert.equal(r.status, 200);
    assert.equal(sha256(r.body), digest);
    assert.equal(p.log.at(-1)!.bytesOut, blob.length);
  });

  it('patch-limit: a 6 MiB PATCH gets 416, a 3 MiB one goes through, chunked ones are counted', async () => {
    const p = await proxy([{ kind: 'patch-limit', maxBytes: 4 * MiB, status: 416 }]);
    const big = await call(await startUpload(p.url), { method: 'PATCH', body: Buffer.alloc(6 * MiB, 1), headers: octets });
    assert.equal(big.status, 416);
    const small = await call(await startUpload(p.url), { method: 'PATCH', body: Buffer.alloc(3 * MiB, 1), headers: octets });
    assert.equal(small.status, 202);
    assert.equal(small.headers.range, `0-${3 * MiB - 1}`);
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 6; i++) yield Buffer.alloc(MiB, 2);
    }
    const streamed = await call(await startUpload(p.url), { method: 'PATCH', body: Readable.from(chunks()), headers: octets });
    assert.equal(streamed.status, 416);
    const refused = p.log.filter((e) => e.rules.includes('patch-limit'));
    assert.equal(refused.length, 2);
    assert.ok(refused.every((e) => e.bytesIn === 6 * MiB));
  });

  it('patch-201: PATCH answered 201 (not 202), Location still on the proxy', async () => {
    const p = await proxy([{ kind: 'patch-201' }]);
    const r = await call(await startUpload(p.url), { method: 'PATCH', body: Buffer.from('hello'), headers: octets });
    assert.equal(r.status, 201);
    assert.ok(String(r.headers.location).startsWith(p.url));
    assert.equal(r.headers.range, '0-4');
  });

  it('reject-patch: chunked uploads refused, monolithic PUT still works', async () => {
    const p = await proxy([{ kind: 'reject-patch' }]);
    const loc = await startUpload(p.url);
    const r = await call(loc, { method: 'PATCH', body: Buffer.from('chunk'), headers: octets });
    assert.equal(r.status, 405);
    const body = Buffer.from('monolithic');
    const put = new URL(loc);
    put.searchParams.set('digest', sha256(body));
    assert.equal((await call(put.href, { method: 'PUT', body, headers: octets })).status, 201);
  });

  it('redirect-blob-get: the blob is served by the mirror, which records what it was sent', async () => {
    const m = await mirror();
    const p = await proxy([{ kind: 'redirect-blob-get', to: m.url }]);
    const r = await call(`${p.url}/v2/lib/model/blobs/${digest}`, { headers: { authorization: 'Bearer for-the-registry-only' } });
    assert.equal(r.status, 307);
    const where = new URL(String(r.headers.location));
    assert.equal(where.origin, m.url);
    // Follow as a careful client does: no credentials to the other origin; ask for a range.
    const got = await call(where.href, { headers: { range: 'bytes=100-199' } });
    assert.equal(got.status, 206);
    assert.deepEqual(got.body, blob.subarray(100, 200));
    const seen = m.requests.at(-1)!;
    assert.equal(seen.headers.authorization, undefined);
    assert.equal(seen.headers.cookie, undefined);
    assert.equal(seen.headers.range, 'bytes=100-199');
    // HEAD is not redirected, only GET.
    assert.equal((await call(`${p.url}/v2/lib/model/blobs/${digest}`, { method: 'HEAD' })).status, 200);
  });

  it('location-other-host: the upload continues on the other origin and completes', async () => {
    const m = await mirror();
    const p = await proxy([{ kind: 'location-other-host', to: m.url }]);
    const loc = await startUpload(p.url, 'other/host');
    assert.ok(loc.startsWith(`${m.url}/v2/other/host/blobs/uploads/`), loc);
    const body = content(100_000);
    const patched = await call(loc, { method: 'PATCH', body, headers: octets });
    assert.equal(patched.status, 202);
    assert.ok(String(patched.headers.location).startsWith(m.url), 'the mirror keeps the client on itself');
    const put = new URL(String(patched.headers.location));
    put.searchParams.set('digest', sha256(body));
    assert.equal((await call(put.href, { method: 'PUT' })).status, 201);
    const back = await call(`${reg}/v2/other/host/blobs/${sha256(body)}`);
    assert.equal(sha256(back.body), sha256(body));
    assert.deepEqual(m.requests.map((q) => q.method), ['PATCH', 'PUT']);
  });

  it('status-burst: answers N times with the status and Retry-After, then forwards', async () => {
    const p = await proxy([{ kind: 'status-burst', status: 503, count: 2, retryAfter: '1', match: /^\/v2\/$/ }]);
    const seen: Array<[number, unknown]> = [];
    for (let i = 0; i < 3; i++) {
      const r = await call(`${p.url}/v2/`);
      seen.push([r.status, r.headers['retry-after']]);
    }
    assert.deepEqual(seen, [
      [503, '1'],
      [503, '1'],
      [200, undefined],
    ]);
    assert.equal(p.fired(0), 2);
    // The match keeps other paths untouched even during the burst.
    const q = await proxy([{ kind: 'status-burst', status: 429, count: 1, match: /\/blobs\// }]);
    assert.equal((await call(`${q.url}/v2/`)).status, 200);
    const limited = await call(`${q.url}/v2/lib/model/blobs/${digest}`);
    assert.equal(limited.status, 429);
    assert.match(limited.body.toString(), /TOOMANYREQUESTS/);
    assert.equal((await call(`${q.url}/v2/lib/model/blobs/${digest}`)).status, 200);
  });

  it('reset-mid-body: the connection dies after N bytes, once; the retry succeeds', async () => {
    const p = await proxy([{ kind: 'reset-mid-body', afterBytes: 64 * 1024, match: /\/blobs\// }]);
    const res = await request(`${p.url}/v2/lib/model/blobs/${digest}`);
    assert.equal(res.statusCode, 200);
    let received = 0;
    await assert.rejects(async () => {
      for await (const chunk of res.body) received += (chunk as Buffer).length;
    });
    assert.ok(received <= 64 * 1024, `got ${received} bytes`);
    const again = await call(`${p.url}/v2/lib/model/blobs/${digest}`);
    assert.equal(sha256(again.body), digest);
    assert.equal(p.fired(0), 1);
  });

  it('truncate-body: a premature close with the real length, or a short "complete" body', async () => {
    const p = await proxy([{ kind: 'truncate-body', afterBytes: 1000, match: /\/blobs\// }]);
    await assert.rejects(call(`${p.url}/v2/lib/model/blobs/${digest}`));
    const q = await proxy([{ kind: 'truncate-body', afterBytes: 1000, keepLength: false, match: /\/blobs\// }]);
    const short = await call(`${q.url}/v2/lib/model/blobs/${digest}`);
    assert.equal(short.status, 200);
    assert.equal(short.body.length, 1000);
    assert.deepEqual(short.body, blob.subarray(0, 1000));
    assert.notEqual(short.headers['docker-content-digest'], sha256(short.body));
  });

  it('corrupt-body: same length, different digest', async () => {
    const p = await proxy([{ kind: 'corrupt-body', atByte: 5000, match: /\/blobs\// }]);
    const r = await call(`${p.url}/v2/lib/model/blobs/${digest}`);
    assert.equal(r.body.length, blob.length);
    assert.notEqual(sha256(r.body), digest);
    assert.equal(r.body[5000], blob[5000]! ^ 0xff);
  });

  it('stall: before the answer, or in the middle of the body (client timeouts fire)', async () => {
    const p = await proxy([{ kind: 'stall', ms: 300, match: /^\/v2\/$/ }]);
    const t0 = Date.now();
    assert.equal((await call(`${p.url}/v2/`)).status, 200);
    assert.ok(Date.now() - t0 >= 280, 'the first request waited');
    const t1 = Date.now();
    await call(`${p.url}/v2/`);
    assert.ok(Date.now() - t1 < 280, 'only once by default');

    const q = await proxy([{ kind: 'stall', ms: 5000, afterBytes: 1024, match: /\/blobs\// }]);
    await assert.rejects(call(`${q.url}/v2/lib/model/blobs/${digest}`, { bodyTimeout: 200 }), (err: Error & { code?: string }) => err.code === 'UND_ERR_BODY_TIMEOUT');
  });

  it('paginate-tags + cross-origin-link: tags in pages whose next link names another origin', async () => {
    const config = Buffer.from('{}');
    const cfgDigest = await pushBlob(reg, 'lib/tags', config);
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cfgDigest, size: config.length }, layers: [] });
    for (const tag of ['v3', 'v1', 'v5', 'v2', 'v4']) {
      const r = await call(`${reg}/v2/lib/tags/manifests/${tag}`, { method: 'PUT', body: Buffer.from(manifest), headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(r.status, 201);
    }
    const p = await proxy([{ kind: 'paginate-tags', pageSize: 2 }]);
    const pages: string[][] = [];
    let next: string | undefined = `${p.url}/v2/lib/tags/tags/list`;
    while (next) {
      const r = await call(next);
      pages.push((JSON.parse(r.body.toString()) as { tags: string[] }).tags);
      const link = r.headers.link as string | undefined;
      next = link ? new URL(/<([^>]+)>/.exec(link)![1]!, next).href : undefined;
    }
    assert.deepEqual(pages, [['v1', 'v2'], ['v3', 'v4'], ['v5']]);

    const q = await proxy([{ kind: 'paginate-tags', pageSize: 2 }, { kind: 'cross-origin-link', to: 'http://127.0.0.1:9' }]);
    const first = await call(`${q.url}/v2/lib/tags/tags/list?n=2`);
    assert.equal(first.headers.link, '<http://127.0.0.1:9/v2/lib/tags/tags/list?n=2&last=v2>; rel="next"');
    // _catalog has real Link headers in distribution 2.8: rewritten the same way.
    const catalog = await call(`${q.url}/v2/_catalog?n=1`);
    assert.match(String(catalog.headers.link), /^<http:\/\/127\.0\.0\.1:9\/v2\/_catalog\?/);
  });

  it('redirect: an HTTPS proxy that downgrades to HTTP', async () => {
    const pki = await makeTestPki(join(await tempDir(), 'pki'));
    const m = await mirror();
    const p = await proxy([{ kind: 'redirect', to: m.url, match: /\/manifests\// }], { tls: { cert: pki.serverCert, key: pki.serverKey } });
    assert.match(p.url, /^https:/);
    const agent = new Agent({ connect: { ca: await readFile(pki.caCert) } });
    try {
      assert.equal((await call(`${p.url}/v2/`, { dispatcher: agent })).status, 200);
      const r = await call(`${p.url}/v2/lib/tags/manifests/v1`, { dispatcher: agent });
      assert.equal(r.status, 307);
      assert.match(String(r.headers.location), /^http:\/\/127\.0\.0\.1:\d+\/v2\/lib\/tags\/manifests\/v1$/);
    } finally {
      await agent.close();
    }
  });

  it('set-header: drops a header the registry sent', async () => {
    const p = await proxy([{ kind: 'set-header', name: 'Docker-Content-Digest', match: /\/blobs\// }]);
    const r = await call(`${p.url}/v2/lib/model/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['docker-content-digest'], undefined);
  });

  it('probability: the same seed fires on the same requests', async () => {
    const pattern = async (seed: number): Promise<number[]> => {
      const p = await proxy([{ kind: 'status-burst', status: 500, count: 1000, probability: 0.5 }], { seed });
      const out: number[] = [];
      for (let i = 0; i < 12; i++) out.push((await call(`${p.url}/v2/`)).status);
      return out;
    };
    const a = await pattern(42);
    assert.deepEqual(await pattern(42), a);
    assert.ok(a.includes(500) && a.includes(200), `a mix of both: ${a.join(',')}`);
  });

  it('stops promptly even with a request stalled inside', async () => {
    const p = await startFaultProxy({ target: reg, rules: [{ kind: 'stall', ms: 60_000 }] });
    const pending = call(`${p.url}/v2/`).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await p.stop();
    assert.ok(Date.now() - t0 < 2000);
    assert.ok((await pending) instanceof Error);
  });
});
