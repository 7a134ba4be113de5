/**
 * `kit import` failures, end to end, against a fake Hub standing for the real Hugging Face Hub:
 * gated and private repositories (401/403 with X-Error-Code GatedRepo / RepoNotFound), missing
 * repositories and revisions (404 RepoNotFound / RevisionNotFound), rate limits (429 with the
 * Hub's RateLimit headers), a CDN serving bytes that do not match lfs.oid, and HF_HUB_OFFLINE.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runKit } from '../helpers/cli.js';
import { FakeHub, GRANTED, MODEL_COMMIT, TOKEN, cacheRoot, gitBlobSha1, hubEnv, importKit, modelFiles, modelRepo, sha256Hex } from '../helpers/fake-hub.js';
import { tempDir } from '../helpers/tmp.js';

async function storedRefs(home: string): Promise<string[]> {
  const r = await runKit(['list', '--json'], { home });
  return (JSON.parse(r.stdout || '[]') as Array<{ repository: string }>).map((x) => x.repository);
}

describe('kit import errors (a fake Hub standing for huggingface.co)', () => {
  let hub: FakeHub;
  before(async () => {
    hub = await FakeHub.start({
      validTokens: [TOKEN, GRANTED],
      grantedTokens: [GRANTED],
      repos: [
        modelRepo(),
        modelRepo({ id: 'gated-org/gated-model', gated: true }),
        modelRepo({ id: 'private-org/secret', private: true }),
      ],
    });
  });
  after(() => hub.close());

  it('explains a gated repository: 401 without a token, 403 with a token not granted, and imports with access', async () => {
    const home = await tempDir();
    const anonymous = await importKit(['gated-org/gated-model'], home, await hubEnv(hub.url));
    assert.equal(anonymous.code, 1, anonymous.stderr);
    assert.match(anonymous.stderr, /kit: gated-org\/gated-model is a gated repository and no token was used \(HTTP 401\)/);
    assert.match(anonymous.stderr, /hint: accept the conditions at .*gated-org\/gated-model, then set HF_TOKEN/);

    const denied = await importKit(['gated-org/gated-model'], home, await hubEnv(hub.url, { HF_TOKEN: TOKEN }));
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /is a gated repository and the token used has no access to it \(HTTP 403\): Access to model gated-org\/gated-model is restricted and you are not in the authorized list/);
    assert.match(denied.stderr, /the token from HF_TOKEN/);
    assert.doesNotMatch(denied.stderr + denied.stdout, new RegExp(TOKEN), 'the token is never printed');

    // The token file under HF_HOME is read when no variable is set.
    const env = await hubEnv(hub.url);
    await writeFile(join(env['HF_HOME']!, 'token'), `${GRANTED}\n`);
    const ok = await importKit(['gated-org/gated-model', '-t', 'x.io/gated/model:1'], home, env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(await storedRefs(home), ['x.io/gated/model']);
  });

  it('says a missing repository or revision is missing (404 RepoNotFound / RevisionNotFound), exit code 3', async () => {
    const home = await tempDir();
    const cdnBefore = hub.cdnRequests().length;
    const withToken = await importKit(['test-org/no-such-model'], home, await hubEnv(hub.url, { HF_TOKEN: TOKEN }));
    assert.equal(withToken.code, 3);
    assert.match(withToken.stderr, /kit: repository test-org\/no-such-model was not found on 127\.0\.0\.1:\d+ \(HTTP 404\): Repository not found/);
    const anonymous = await importKit(['private-org/secret'], home, await hubEnv(hub.url));
    assert.equal(anonymous.code, 3);
    assert.match(anonymous.stderr, /\(HTTP 401\)/);
    assert.match(anonymous.stderr, /hint: .*if it is private or gated, set HF_TOKEN/);
    const revision = await importKit(['test-org/Tiny-Model', '--revision', 'v9'], home, await hubEnv(hub.url));
    assert.equal(revision.code, 3);
    assert.match(revision.stderr, /kit: revision "v9" was not found in test-org\/Tiny-Model \(HTTP 404\): Invalid rev id: v9/);
    const datasetAsModel = await importKit(['hf://datasets/test-org/Tiny-Model'], home, await hubEnv(hub.url));
    assert.equal(datasetAsModel.code, 3);
    assert.equal(hub.cdnRequests().length, cdnBefore, 'nothing downloaded');
    assert.deepEqual(await storedRefs(home), []);
  });

  it('waits out a 429 as the RateLimit header says, and refuses a wait beyond its cap at once', async () => {
    const home = await tempDir();
    hub.rateLimit = { remaining: 2, resetSeconds: 1 };
    const started = Date.now();
    const ok = await importKit(['test-org/Tiny-Model', '-t', 'x.io/rl/model:1'], home, await hubEnv(hub.url));
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(Date.now() - started >= 1900, 'waited about 1 s twice');
    assert.match(ok.stderr, /Waiting 1 s: rate limited by the Hub \(429\)/);

    hub.rateLimit = { remaining: 1, resetSeconds: 3600 };
    const t = Date.now();
    const refused = await importKit(['test-org/Tiny-Model', '-t', 'x.io/rl/model:2'], home, await hubEnv(hub.url));
    assert.equal(refused.code, 1);
    assert.doesNotMatch(refused.stderr, /Waiting/, 'no hour-long wait started');
    assert.ok(Date.now() - t < 60_000);
    assert.match(refused.stderr, /kit: the Hub rate-limited kit \(429 from 127\.0\.0\.1:\d+\); it asks to wait 3600 s, longer than kit waits \(300 s\) \["fixed window";"api";q=500;w=300\]/);
    assert.match(refused.stderr, /hint: set HF_TOKEN/);
    hub.rateLimit = { remaining: 0, resetSeconds: 0 };
  });

  it('refuses a file whose bytes do not match its lfs sha256, keeping nothing of it', async () => {
    const home = await tempDir();
    hub.cdn = { corrupt: ['model.safetensors'] };
    try {
      const r = await importKit(['test-org/Tiny-Model', '-t', 'x.io/bad/model:1'], home, await hubEnv(hub.url));
      assert.equal(r.code, 1);
      const want = sha256Hex(modelFiles().find((f) => f.path === 'model.safetensors')!.content);
      assert.match(r.stderr, new RegExp(`kit: model\\.safetensors: the downloaded bytes do not match the Hub's listing \\(sha256, from lfs\\.oid: expected ${want}, got [0-9a-f]{64}\\); the file was discarded`));
      assert.deepEqual(await storedRefs(home), []);
      const commitDir = join(cacheRoot(home), 'models', 'test-org', 'Tiny-Model', MODEL_COMMIT);
      const partial = await readdir(join(commitDir, 'partial')).catch((): string[] => []);
      assert.ok(!partial.includes('model.safetensors.part'), 'the bad bytes are not kept for a resume');
      const files = await readdir(join(commitDir, 'files')).catch((): string[] => []);
      assert.ok(!files.includes('model.safetensors'));
    } finally {
      hub.cdn = {};
    }
  });

  it('with HF_HUB_OFFLINE imports from the huggingface_hub cache without any request, and says what is missing', async () => {
    const home = await tempDir();
    const env = await hubEnv(hub.url, { HF_HUB_OFFLINE: '1' });
    const missing = await importKit(['test-org/Tiny-Model'], home, env);
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /kit: HF_HUB_OFFLINE is set and the revision "main" of test-org\/Tiny-Model is not in kit's or huggingface_hub's cache/);

    // A snapshot as huggingface_hub leaves it: refs/main, blobs named by etag, snapshot symlinks.
    const repoDir = join(env['HF_HOME']!, 'hub', 'models--test-org--Tiny-Model');
    await mkdir(join(repoDir, 'refs'), { recursive: true });
    await writeFile(join(repoDir, 'refs', 'main'), MODEL_COMMIT);
    for (const f of modelFiles().filter((x) => ['config.json', 'model.safetensors', 'README.md'].includes(x.path))) {
      const etag = f.lfs ? sha256Hex(f.content) : gitBlobSha1(f.content);
      await mkdir(join(repoDir, 'blobs'), { recursive: true });
      await writeFile(join(repoDir, 'blobs', etag), f.content);
      await mkdir(join(repoDir, 'snapshots', MODEL_COMMIT), { recursive: true });
      await symlink(join('..', '..', 'blobs', etag), join(repoDir, 'snapshots', MODEL_COMMIT, f.path));
    }
    const before = hub.requests.length;
    const r = await importKit(['test-org/Tiny-Model', '-t', 'x.io/offline/model:1'], home, env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(hub.requests.length, before, 'no request reached the Hub');
    assert.match(r.stdout, /\(3 files, .*: 3 from the huggingface_hub cache\)/);
    const cfg = JSON.parse((await runKit(['inspect', 'x.io/offline/model:1'], { home })).stdout) as { config: { config: Record<string, string> } };
    assert.equal(cfg.config.config['paramSize'], '1.2M');
  });

  it('refuses --push without -t and a bad -t before downloading anything', async () => {
    const home = await tempDir();
    const before = hub.requests.length;
    const push = await importKit(['test-org/Tiny-Model', '--push'], home, await hubEnv(hub.url));
    assert.equal(push.code, 2);
    assert.match(push.stderr, /--push needs -t/);
    const bad = await importKit(['test-org/Tiny-Model', '-t', 'Bad Ref'], home, await hubEnv(hub.url));
    assert.equal(bad.code, 2);
    const repo = await importKit(['not/a/repo'], home, await hubEnv(hub.url));
    assert.equal(repo.code, 2);
    assert.equal(hub.requests.length, before);
  });
});
