/**
 * Issue 5, point 4, registries: each scenario of fixtures/hostile/registries/ played against the
 * real CLI (`kit pull`, `kit list --remote`, `kit push`) with credentials configured (so that
 * there is something to leak). Each is refused with one clear error, a non-zero exit, nothing
 * written outside the target and the store unchanged; the redirect to another host is followed
 * (blob GETs go to object storage) but without Authorization or Cookie.
 *
 * Where the misbehaviour comes from, per scenario (also in each JSON file's "via"):
 *  - the fault proxy (test/integration/harness/fault-proxy.ts) in front of a real registry
 *    (CNCF distribution 2.8, plain or with token auth) for redirects, downgrades, cross-origin
 *    Link headers and upload Locations;
 *  - a tiny fake registry (./helpers-faults/fake-registry.ts) for hostile WWW-Authenticate
 *    challenges and token realms, token responses without a token, and endless pagination.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXAMPLE } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { rawRegistryClient, registrySkipReason, startRegistry, type RunningRegistry } from '../integration/harness/registry-server.js';
import { MediaType } from '../../src/oci/descriptor.js';
import { startSetup, type Setup } from '../integration/harness/setups.js';
import { startBlobMirror, startFaultProxy, type BlobMirror, type FaultProxy, type FaultRule } from '../integration/harness/fault-proxy.js';
import { makeTestPki, type TestPki } from '../integration/harness/tls.js';
import { kit, kitOk } from './helpers-faults/common.js';
import { json, startFakeRegistry, type FakeRegistry } from './helpers-faults/fake-registry.js';
import { CORPUS, assertRefused, assertUnchanged, expectRefusal, initStore, rawPushManifest, snapshot, workspace } from './helpers-faults/hostile.js';

const registrySkip = await registrySkipReason();
const DIR = join(CORPUS, 'registries');
const USER = 'alice';
const PASSWORD = 'wonderland';
/** Credentials for any registry (kit's CI environment variables): what a hostile server would want. */
const CREDS = { KIT_REGISTRY_USERNAME: USER, KIT_REGISTRY_PASSWORD: PASSWORD };

interface Scenario {
  description: string;
  challenge?: string;
  challenges?: string[];
  responses?: unknown[];
  setCookie?: string;
}

async function scenario(name: string): Promise<Scenario> {
  return JSON.parse(await readFile(join(DIR, `${name}.json`), 'utf8')) as Scenario;
}

const ITEMS = [
  'redirect-other-host',
  'redirect-manifest-other-host',
  'https-downgrade',
  'realm-file-scheme',
  'realm-other-scheme',
  'link-other-origin',
  'malformed-www-authenticate',
  'endless-pagination',
  'token-without-token',
  'upload-location-file-scheme',
];

describe('hostile registries (fixtures/hostile/registries)', { concurrency: 3 }, () => {
  const stoppers: Array<() => Promise<void>> = [];
  let setup: Setup | undefined;
  let plain: RunningRegistry | undefined;
  let pki: TestPki;
  /** A home whose store holds fixtures/example, tagged for the plain registry. */
  let packed: { home: string; ref: string } | undefined;

  before(async () => {
    pki = await makeTestPki(join(await tempDir('kit-pki-'), 'pki'));
    if (registrySkip) return;
    setup = await startSetup('token');
    stoppers.push(() => setup!.stop());
    plain = await startRegistry();
    stoppers.push(() => plain!.stop());
    const home = await tempDir('kit-packed-');
    const ref = `${plain.host}/hostile/example:1`;
    await kitOk(['pack', EXAMPLE, '-t', ref], home);
    await kitOk(['push', ref], home);
    // More tags (for pagination), set in-process by the harness's bare client.
    const raw = rawRegistryClient(plain.url);
    const get = await raw.request({ method: 'GET', url: '/v2/hostile/example/manifests/1', headers: { accept: MediaType.ImageManifest }, scopes: [] });
    const manifest = Buffer.from(await get.text());
    for (const t of ['a', 'b', 'c', 'd', 'e']) assert.equal((await rawPushManifest(raw, 'hostile/example', t, manifest)).status, 201);
    packed = { home, ref };
  });

  after(async () => {
    for (const s of stoppers.splice(0).reverse()) await s().catch(() => {});
  });

  async function fake(handler: Parameters<typeof startFakeRegistry>[0]): Promise<FakeRegistry> {
    const f = await startFakeRegistry(handler);
    stoppers.push(() => f.stop());
    return f;
  }

  async function faultProxy(target: string, rules: FaultRule[], tls?: boolean): Promise<FaultProxy> {
    const p = await startFaultProxy({ target, rules, ...(tls ? { tls: { cert: pki.serverCert, key: pki.serverKey } } : {}) });
    stoppers.push(() => p.stop());
    return p;
  }

  async function mirror(target: string, upstreamHeaders?: Record<string, string>, tls?: boolean): Promise<BlobMirror> {
    const m = await startBlobMirror({ target, ...(upstreamHeaders ? { upstreamHeaders } : {}), ...(tls ? { tls: { cert: pki.serverCert, key: pki.serverKey } } : {}) });
    stoppers.push(() => m.stop());
    return m;
  }

  it('the corpus, the README index and this list name the same scenarios', async () => {
    assert.deepEqual((await readdir(DIR)).map((n) => n.replace(/\.json$/, '')).sort(), [...ITEMS].sort());
    const readme = await readFile(join(CORPUS, 'README.md'), 'utf8');
    for (const i of ITEMS) assert.ok(readme.includes(`registries/${i}`), `README lists registries/${i}`);
  });

  it('redirect-other-host: blob GETs follow the redirect, and no Authorization and no cookie reach the other host', { skip: registrySkip }, async () => {
    const s = await scenario('redirect-other-host');
    const reg = setup!.registry;
    const home = await tempDir('kit-pusher-');
    const ref = `${reg.host}/team/redirected:1`;
    await kitOk(['pack', EXAMPLE, '-t', ref], home, CREDS);
    await kitOk(['push', ref], home, CREDS);
    // The "CDN" on another origin fetches from the registry with its own token, as a pre-signed URL would.
    const token = setup!.token!.mint(USER, [{ type: 'repository', name: 'team/redirected', actions: ['pull'] }]);
    const other = await mirror(reg.url, { authorization: `Bearer ${token}` });
    const proxy = await faultProxy(reg.url, [
      { kind: 'redirect-blob-get', to: other.url },
      { kind: 'set-header', name: 'set-cookie', value: s.setCookie! },
    ]);
    const ws = await workspace();
    await initStore(ws);
    const out = JSON.parse(await kitOk(['pull', `${proxy.host}/team/redirected:1`, '--json'], ws.home, CREDS)) as { copied: number };
    assert.ok(out.copied >= 10);
    assert.ok(other.requests.length >= 10, 'the blobs came from the other host');
    for (const r of other.requests) {
      assert.equal(r.headers.authorization, undefined, `no Authorization on ${r.method} ${r.url}`);
      assert.equal(r.headers.cookie, undefined, `no Cookie on ${r.method} ${r.url}`);
    }
    // The registry itself did get credentials (so there was something to leak), and set cookies.
    assert.ok(proxy.log.some((l) => typeof l.headers.authorization === 'string'));
    assert.ok(proxy.fired(1) >= 1, 'registry responses carried the cookie');
    assert.ok(!proxy.log.some((l) => l.headers.cookie !== undefined), 'kit never sends cookies back either');
  });

  it('redirect-manifest-other-host: a redirected manifest request is not followed', { skip: registrySkip }, async () => {
    const reg = setup!.registry;
    const home = await tempDir('kit-pusher-');
    const ref = `${reg.host}/team/everything-redirected:1`;
    await kitOk(['pack', EXAMPLE, '-t', ref], home, CREDS);
    await kitOk(['push', ref], home, CREDS);
    const other = await mirror(reg.url);
    const proxy = await faultProxy(reg.url, [{ kind: 'redirect', to: other.url }]);
    const ws = await workspace();
    await initStore(ws);
    await expectRefusal(ws, ['pull', `${proxy.host}/team/everything-redirected:1`], /answered 307/, 'redirect-manifest-other-host', CREDS);
    assert.deepEqual(other.requests, [], 'nothing reached the other host');
  });

  it('https-downgrade: an https registry redirecting blobs to plain http is refused', { skip: registrySkip }, async () => {
    const other = await mirror(plain!.url);
    const proxy = await faultProxy(plain!.url, [{ kind: 'redirect-blob-get', to: other.url }], true);
    assert.ok(proxy.url.startsWith('https:') && other.url.startsWith('http:'));
    const ws = await workspace();
    await initStore(ws);
    await expectRefusal(ws, ['pull', `${proxy.host}/hostile/example:1`, '--ca-cert', pki.caCert], /from https to plain http .*kit refused to follow/, 'https-downgrade', CREDS);
    assert.deepEqual(other.requests, [], 'nothing was sent to the http URL');
  });

  for (const name of ['realm-file-scheme', 'realm-other-scheme']) {
    it(`${name}: a token realm that is not http(s) is refused before any credential goes anywhere`, async () => {
      const s = await scenario(name);
      await Promise.all(
        (s.challenges ?? [s.challenge!]).map(async (challenge) => {
          const f = await fake((req, res, url) => {
            if (url.pathname.startsWith('/v2/')) json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, { 'www-authenticate': challenge });
          });
          const ws = await workspace();
          await initStore(ws);
          await expectRefusal(ws, ['pull', `${f.host}/team/model:1`], /sent a token realm kit will not use: scheme "(file|ftp|gopher|data):" is not http or https/, `${name}: ${challenge}`, CREDS);
          assert.ok(f.requests.every((r) => r.headers.authorization === undefined), 'no credentials sent to the registry either');
        }),
      );
    });
  }

  it('link-other-origin: a next-page Link to another origin is refused, and never followed', { skip: registrySkip }, async () => {
    const other = await fake(() => {});
    const proxy = await faultProxy(plain!.url, [
      { kind: 'paginate-tags', pageSize: 2 },
      { kind: 'cross-origin-link', to: other.url },
    ]);
    const ws = await workspace();
    await initStore(ws);
    await expectRefusal(ws, ['list', '--remote', `${proxy.host}/hostile/example`], /next-page link points to another host/, 'link-other-origin', CREDS);
    assert.deepEqual(other.requests, []);
  });

  it('malformed-www-authenticate: challenges kit cannot parse are refused', async () => {
    await Promise.all(
      (await scenario('malformed-www-authenticate')).challenges!.map(async (challenge) => {
        const f = await fake((req, res, url) => {
          if (url.pathname.startsWith('/v2/')) json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, { 'www-authenticate': challenge });
        });
        const ws = await workspace();
        await initStore(ws);
        await expectRefusal(ws, ['pull', `${f.host}/team/model:1`], /malformed WWW-Authenticate header from the registry/, `malformed: ${challenge}`, CREDS);
      }),
    );
  });

  it('endless-pagination: a tag list that never ends is cut at 100 pages', async () => {
    const f = await fake((req, res, url) => {
      if (url.pathname !== '/v2/team/model/tags/list') return;
      const page = Number(url.searchParams.get('page') ?? '0');
      json(res, 200, { name: 'team/model', tags: [`t${page}`] }, { link: `</v2/team/model/tags/list?page=${page + 1}>; rel="next"` });
    });
    const ws = await workspace();
    await initStore(ws);
    await expectRefusal(ws, ['list', '--remote', `${f.host}/team/model`], /tags of .*: more than 100 pages/, 'endless-pagination', CREDS);
    assert.ok(f.requests.filter((r) => r.url.includes('/tags/list')).length <= 100);
  });

  it('token-without-token: a token response that carries no token is refused', async () => {
    await Promise.all(
      (await scenario('token-without-token')).responses!.map(async (body) => {
        const f = await fake((req, res, url, origin) => {
          if (url.pathname === '/token') return json(res, 200, body);
          if (url.pathname.startsWith('/v2/')) {
            json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }, { 'www-authenticate': `Bearer realm="${origin}/token",service="hostile"` });
          }
        });
        const ws = await workspace();
        await initStore(ws);
        await expectRefusal(ws, ['pull', `${f.host}/team/model:1`], /token server .* answered without a token/, `token response ${JSON.stringify(body)}`, CREDS);
        assert.ok(f.requests.some((r) => r.url.startsWith('/token')), 'the token realm was asked');
      }),
    );
  });

  it('upload-location-file-scheme: an upload Location with a file: URL is refused', { skip: registrySkip }, async () => {
    const proxy = await faultProxy(plain!.url, [{ kind: 'location-other-host', to: 'file:///tmp/kit-hostile-upload' }]);
    const ws = await workspace();
    const ref = `${proxy.host}/hostile/upload:1`;
    await kitOk(['pack', EXAMPLE, '-t', ref], ws.home);
    const before = await snapshot(ws);
    const r = await kit(['push', ref], ws.home, CREDS);
    assertRefused(r, /gave an upload Location kit refuses to use: file:/, 'upload-location-file-scheme');
    assertUnchanged(before, await snapshot(ws), 'upload-location-file-scheme');
    await assert.rejects(readFile('/tmp/kit-hostile-upload'));
    assert.ok(!proxy.log.some((l) => l.method === 'PATCH' || (l.method === 'PUT' && l.url.includes('/blobs/'))), 'no blob bytes went anywhere');
  });

  // Keep `packed` referenced for readers: the plain registry holds fixtures/example under hostile/example:{1,a..e}.
  it('the plain registry holds the example artifact the scenarios above read', { skip: registrySkip }, async () => {
    assert.ok(packed);
    const tags = JSON.parse(await kitOk(['list', '--remote', `${plain!.host}/hostile/example`, '--json'], packed.home)) as Array<{ tag: string }>;
    assert.deepEqual(tags.map((t) => t.tag).sort(), ['1', 'a', 'b', 'c', 'd', 'e']);
  });
});
