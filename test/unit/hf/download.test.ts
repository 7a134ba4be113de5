/**
 * The Hub client and downloader against a fake Hub on 127.0.0.1 that stands for the real Hugging
 * Face Hub and its CDN (test/helpers/fake-hub.ts serves the documented response shapes).
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KitError } from '../../../src/errors.js';
import { HubApi, type TreeFile } from '../../../src/hf/api.js';
import { commitDirs } from '../../../src/hf/cache.js';
import { downloadAll, downloadFile, type DownloadEvent, type DownloadOptions } from '../../../src/hf/download.js';
import { HubHttp } from '../../../src/hf/http.js';
import { FakeHub, TOKEN, fakeCommit, gitBlobSha1, sha256Hex } from '../../helpers/fake-hub.js';
import { tempDir } from '../../helpers/tmp.js';

const COMMIT = fakeCommit('unit');
const LFS = Buffer.from('0123456789abcdef'.repeat(4096)); // 64 KiB
const PLAIN = Buffer.from('{"hello": "world"}');
const SMALL = Buffer.from('small LFS file');

describe('Hub client and downloader (a fake Hub standing for huggingface.co)', () => {
  let hub: FakeHub;
  let http: HubHttp;
  let api: HubApi;
  before(async () => {
    hub = await FakeHub.start({
      pageSize: 1,
      validTokens: [TOKEN],
      repos: [{ type: 'model', id: 'o/m', refs: { main: COMMIT }, commits: { [COMMIT]: [{ path: 'w.bin', content: LFS, lfs: true }, { path: 'sub/c.json', content: PLAIN }, { path: 'small.bin', content: SMALL, lfs: true }] } }],
    });
    http = new HubHttp({ endpoint: hub.url, token: TOKEN, baseDelayMs: 1 });
    api = new HubApi(http, { type: 'model', id: 'o/m' });
  });
  after(async () => {
    await http.close();
    await hub.close();
  });

  async function setup(): Promise<{ opts: DownloadOptions; events: DownloadEvent[]; files: TreeFile[] }> {
    const home = await tempDir();
    const files = await api.listTree(COMMIT);
    const events: DownloadEvent[] = [];
    const opts: DownloadOptions = {
      http,
      dirs: commitDirs({ type: 'model', id: 'o/m' }, COMMIT, home),
      url: (f) => api.resolveUrl(COMMIT, f.path),
      context: (f) => api.context({ revision: COMMIT, file: f.path }),
      onEvent: (e) => events.push(e),
    };
    return { opts, events, files };
  }

  it('resolves the revision and lists every page of the tree', async () => {
    const info = await api.repoInfo('main');
    assert.equal(info.commit, COMMIT);
    const before = hub.hubRequests().length;
    const files = await api.listTree(COMMIT);
    assert.deepEqual(files, [
      { path: 'small.bin', size: SMALL.length, oid: gitBlobSha1(SMALL), lfs: { oid: sha256Hex(SMALL), size: SMALL.length } },
      { path: 'sub/c.json', size: PLAIN.length, oid: gitBlobSha1(PLAIN) },
      { path: 'w.bin', size: LFS.length, oid: gitBlobSha1(LFS), lfs: { oid: sha256Hex(LFS), size: LFS.length } },
    ]);
    assert.equal(hub.hubRequests().length - before, 4, 'four pages of one entry (small.bin, sub, sub/c.json, w.bin)');
  });

  it('downloads and verifies both kinds of file, the token going to the Hub only', async () => {
    const { opts, files } = await setup();
    const before = hub.requests.length;
    for (const f of files) assert.equal(await downloadFile(f, opts), 'downloaded');
    assert.deepEqual(await readFile(join(opts.dirs.files, 'w.bin')), LFS);
    assert.deepEqual(await readFile(join(opts.dirs.files, 'sub', 'c.json')), PLAIN);
    const reqs = hub.requests.slice(before);
    assert.ok(reqs.filter((q) => q.server === 'hub').every((q) => q.authorization === `Bearer ${TOKEN}`));
    assert.ok(reqs.filter((q) => q.server === 'cdn').length === 2 && reqs.filter((q) => q.server === 'cdn').every((q) => q.authorization === undefined));
    // A second time: already there, nothing fetched.
    const n = hub.requests.length;
    assert.equal(await downloadFile(files[2]!, opts), 'cached');
    assert.equal(hub.requests.length, n);
  });

  it('resumes a partial file with Range, and starts over on a 200 answer', async () => {
    const { opts, events, files } = await setup();
    const w = files.find((f) => f.path === 'w.bin')!;
    const partial = join(opts.dirs.partial, 'w.bin.part');
    await mkdir(dirname(partial), { recursive: true });
    await writeFile(partial, LFS.subarray(0, 1000));
    const before = hub.cdnRequests().length;
    await downloadFile(w, opts);
    assert.equal(hub.cdnRequests()[before]?.range, 'bytes=1000-');
    assert.deepEqual(events.find((e) => e.type === 'file-done'), { type: 'file-done', path: 'w.bin', size: LFS.length, how: 'downloaded', resumedFrom: 1000 });

    const again = await setup();
    await mkdir(dirname(join(again.opts.dirs.partial, 'w.bin.part')), { recursive: true });
    await writeFile(join(again.opts.dirs.partial, 'w.bin.part'), LFS.subarray(0, 5000));
    hub.cdn = { ignoreRange: true };
    try {
      await downloadFile(w, again.opts);
    } finally {
      hub.cdn = {};
    }
    assert.deepEqual(await readFile(join(again.opts.dirs.files, 'w.bin')), LFS);
    assert.ok(again.events.some((e) => e.type === 'file-restart'));
  });

  it('asks the Hub for a new link when the CDN refuses a signed URL', async () => {
    const { opts, events, files } = await setup();
    const w = files.find((f) => f.path === 'w.bin')!;
    const before = hub.requests.length;
    hub.cdn = { denyNext: 1 };
    try {
      assert.equal(await downloadFile(w, opts), 'downloaded');
    } finally {
      hub.cdn = {};
    }
    const reqs = hub.requests.slice(before);
    assert.deepEqual(reqs.map((q) => q.server), ['hub', 'cdn', 'hub', 'cdn']);
    assert.ok(events.some((e) => e.type === 'file-restart' && /answered HTTP 403: asking the Hub for a new link/.test(e.reason)));
    assert.deepEqual(await readFile(join(opts.dirs.files, 'w.bin')), LFS);
  });

  it('refuses bytes that do not hash to the listing, and does not keep them', async () => {
    const { opts, files } = await setup();
    const w = files.find((f) => f.path === 'w.bin')!;
    const partial = join(opts.dirs.partial, 'w.bin.part');
    await mkdir(dirname(partial), { recursive: true });
    await writeFile(partial, Buffer.alloc(1000)); // wrong prefix: the resumed whole cannot match
    await assert.rejects(downloadFile(w, opts), (e) => e instanceof KitError && e.code === 'HF_DIGEST_MISMATCH' && /sha256, from lfs\.oid/.test(e.message));
    await assert.rejects(stat(partial));
    const c = files.find((f) => f.path === 'sub/c.json')!;
    await assert.rejects(downloadFile({ ...c, oid: 'f'.repeat(40) }, opts), (e) => e instanceof KitError && /git blob sha1, from oid/.test(e.message));
    const wrongSize: TreeFile = { ...c, size: c.size + 5 };
    await assert.rejects(downloadFile(wrongSize, opts), (e) => e instanceof KitError && e.code === 'HF_SIZE_MISMATCH');
  });

  it('stops every download at the first failure, without waiting for a stalled one', async () => {
    const { opts, files } = await setup();
    hub.cdn = { stallAfter: 1000, corrupt: ['small.bin'] };
    const started = Date.now();
    try {
      await assert.rejects(downloadAll(files, { ...opts, concurrency: 3 }), (e) => e instanceof KitError && e.code === 'HF_DIGEST_MISMATCH' && e.message.startsWith('small.bin'));
    } finally {
      hub.cdn = {};
    }
    assert.ok(Date.now() - started < 10_000, 'the stalled w.bin was aborted, not awaited');
    // What the stalled download received (if anything yet) stays for the next run.
    const kept = await stat(join(opts.dirs.partial, 'w.bin.part')).then((st) => st.size, () => 0);
    assert.ok(kept <= 1000);
    assert.equal(await downloadFile(files.find((f) => f.path === 'w.bin')!, opts), 'downloaded');
  });

  it('waits for a 429 as the RateLimit header says, up to its cap', async () => {
    const waits: number[] = [];
    const h = new HubHttp({ endpoint: hub.url, onWait: (ms) => waits.push(ms), maxRateLimitWaitMs: 5000 });
    try {
      hub.rateLimit = { remaining: 1, resetSeconds: 1 };
      const a = new HubApi(h, { type: 'model', id: 'o/m' });
      assert.equal((await a.repoInfo('main')).commit, COMMIT);
      assert.deepEqual(waits, [1000]);
      hub.rateLimit = { remaining: 1, resetSeconds: 60, retryAfter: 2 };
      await assert.rejects(a.repoInfo('main'), (e) => e instanceof KitError && e.code === 'HF_RATE_LIMITED' && /60 s, longer than kit waits \(5 s\)/.test(e.message));
    } finally {
      hub.rateLimit = { remaining: 0, resetSeconds: 0 };
      await h.close();
    }
  });
});

describe('Hub client redirect and pagination policy', () => {
  it('never sends the token across origins, and refuses a next page on another host', async () => {
    const seen: Array<{ port: number; path: string; auth?: string }> = [];
    const other = createServer((req, res) => {
      seen.push({ port: (other.address() as AddressInfo).port, path: req.url ?? '', ...(req.headers.authorization ? { auth: req.headers.authorization } : {}) });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('[]');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', () => r()));
    const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    const main = createServer((req, res) => {
      seen.push({ port: (main.address() as AddressInfo).port, path: req.url ?? '', ...(req.headers.authorization ? { auth: req.headers.authorization } : {}) });
      if (req.url?.startsWith('/hop')) {
        res.writeHead(302, { location: `${otherUrl}/elsewhere` });
        return res.end();
      }
      if (req.url?.startsWith('/rel')) {
        res.writeHead(307, { location: '/final' });
        return res.end();
      }
      if (req.url?.startsWith('/api/models/o/m/tree/')) {
        res.writeHead(200, { 'content-type': 'application/json', link: `<${otherUrl}/api/models/o/m/tree/x?cursor=1>; rel="next"` });
        return res.end('[]');
      }
      res.writeHead(200);
      res.end('ok');
    });
    await new Promise<void>((r) => main.listen(0, '127.0.0.1', () => r()));
    const mainUrl = `http://127.0.0.1:${(main.address() as AddressInfo).port}`;
    const h = new HubHttp({ endpoint: mainUrl, token: 'hf_secret' });
    try {
      await (await h.request(`${mainUrl}/hop`)).dump();
      assert.deepEqual(seen.map((s) => [s.path, s.auth]), [['/hop', 'Bearer hf_secret'], ['/elsewhere', undefined]]);
      seen.length = 0;
      await (await h.request(`${mainUrl}/rel`)).dump();
      assert.deepEqual(seen.map((s) => [s.path, s.auth]), [['/rel', 'Bearer hf_secret'], ['/final', 'Bearer hf_secret']], 'a same-origin redirect keeps it');
      seen.length = 0;
      await assert.rejects(new HubApi(h, { type: 'model', id: 'o/m' }).listTree('a'.repeat(40)), (e) => e instanceof KitError && /next-page link to another host/.test(e.message));
      assert.equal(seen.filter((s) => s.path.includes('cursor')).length, 0);
    } finally {
      await h.close();
      await new Promise<void>((r) => main.close(() => r()));
      await new Promise<void>((r) => other.close(() => r()));
    }
  });
});
