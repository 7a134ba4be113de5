import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { KitError } from '../../../src/errors.js';
import { pathFilter } from '../../../src/hf/glob.js';
import { nextLink, safeRepoPath } from '../../../src/hf/api.js';
import { parseRateLimitReset, parseRetryAfter, rateLimitWait } from '../../../src/hf/http.js';
import { defaultImportTag, referenceComponent } from '../../../src/hf/import.js';
import { hubSettings, parseRepoSpec } from '../../../src/hf/repo.js';
import { parseReference } from '../../../src/oci/reference.js';
import { tempDir } from '../../helpers/tmp.js';

describe('repository names', () => {
  it('reads every accepted form', () => {
    assert.deepEqual(parseRepoSpec('Qwen/Qwen2.5-0.5B'), { type: 'model', id: 'Qwen/Qwen2.5-0.5B' });
    assert.deepEqual(parseRepoSpec('gpt2'), { type: 'model', id: 'gpt2' });
    assert.deepEqual(parseRepoSpec('hf://org/name'), { type: 'model', id: 'org/name' });
    assert.deepEqual(parseRepoSpec('hf://models/org/name'), { type: 'model', id: 'org/name' });
    assert.deepEqual(parseRepoSpec('hf://datasets/stanfordnlp/imdb'), { type: 'dataset', id: 'stanfordnlp/imdb' });
    assert.deepEqual(parseRepoSpec('hf://org/name@v1.0'), { type: 'model', id: 'org/name', revision: 'v1.0' });
    assert.deepEqual(parseRepoSpec('datasets/org/data'), { type: 'dataset', id: 'org/data' });
    assert.deepEqual(parseRepoSpec('https://huggingface.co/org/name'), { type: 'model', id: 'org/name' });
    assert.deepEqual(parseRepoSpec('https://hf.co/org/name/'), { type: 'model', id: 'org/name' });
    assert.deepEqual(parseRepoSpec('https://huggingface.co/datasets/org/data/tree/refs%2Fconvert%2Fparquet'), { type: 'dataset', id: 'org/data', revision: 'refs/convert/parquet' });
    assert.deepEqual(parseRepoSpec('https://huggingface.co/org/name/blob/abc123/config.json'), { type: 'model', id: 'org/name', revision: 'abc123' });
    assert.deepEqual(parseRepoSpec('https://hf-mirror.example/org/name'), { type: 'model', id: 'org/name', origin: 'https://hf-mirror.example' });
  });

  it('refuses what is not a repository', () => {
    for (const bad of ['', 'a/b/c', 'org/../x', 'org/na--me', 'org/name.', 'hf://spaces/org/app', 'https://huggingface.co/spaces/org/app', 's3://bucket/x', 'org/na me', '/org/name']) {
      assert.throws(() => parseRepoSpec(bad), (e) => e instanceof KitError && e.code === 'HF_REPO_INVALID', bad);
    }
  });
});

describe('hub settings from the environment', () => {
  it('takes --token, then HF_TOKEN, then HUGGING_FACE_HUB_TOKEN, then the token file', async () => {
    const home = await tempDir();
    await mkdir(join(home, 'hf'), { recursive: true });
    await writeFile(join(home, 'hf', 'token'), 'hf_file\n');
    const base = { HF_HOME: join(home, 'hf') };
    assert.equal((await hubSettings({ token: 'hf_flag' }, { ...base, HF_TOKEN: 'hf_env' })).token, 'hf_flag');
    assert.equal((await hubSettings({}, { ...base, HF_TOKEN: 'hf_env', HUGGING_FACE_HUB_TOKEN: 'hf_old' })).tokenSource, 'HF_TOKEN');
    assert.equal((await hubSettings({}, { ...base, HUGGING_FACE_HUB_TOKEN: 'hf_old' })).token, 'hf_old');
    const fromFile = await hubSettings({}, base);
    assert.equal(fromFile.token, 'hf_file');
    assert.equal(fromFile.tokenSource, join(home, 'hf', 'token'));
    assert.equal((await hubSettings({}, { HF_HOME: join(home, 'none') })).token, undefined);
    assert.equal((await hubSettings({}, { XDG_CACHE_HOME: home, HF_TOKEN_PATH: join(home, 'hf', 'token') })).token, 'hf_file');
  });

  it('reads HF_ENDPOINT, HF_HUB_OFFLINE and the huggingface_hub cache location', async () => {
    const s = await hubSettings({}, { HF_ENDPOINT: 'https://mirror.example/', HF_HUB_OFFLINE: '1', HF_HOME: '/h' });
    assert.equal(s.endpoint, 'https://mirror.example');
    assert.equal(s.offline, true);
    assert.equal(s.hfHubCache, join('/h', 'hub'));
    assert.equal((await hubSettings({}, { HF_HOME: '/h' })).endpoint, 'https://huggingface.co');
    assert.equal((await hubSettings({}, { HF_HOME: '/h', HF_HUB_OFFLINE: '0' })).offline, false);
    await assert.rejects(hubSettings({}, { HF_ENDPOINT: 'file:///etc', HF_HOME: '/h' }), (e) => e instanceof KitError && e.code === 'HF_ENDPOINT_INVALID');
  });
});

describe('rate-limit headers', () => {
  it('reads the Hub RateLimit header and Retry-After, taking the longer wait', () => {
    assert.equal(parseRateLimitReset('"api";r=0;t=55'), 55_000);
    assert.equal(parseRateLimitReset('"resolvers";r=0;t=3, "api";r=10;t=120'), 120_000);
    assert.equal(parseRateLimitReset('nothing here'), undefined);
    assert.equal(parseRetryAfter('7'), 7000);
    assert.equal(parseRetryAfter('-1'), undefined);
    assert.equal(rateLimitWait({ ratelimit: '"api";r=0;t=2', 'retry-after': '5' }), 5000);
    assert.equal(rateLimitWait({}), undefined);
  });
});

describe('tree listing helpers', () => {
  it('follows Link rel="next" and refuses unsafe paths', () => {
    assert.equal(nextLink('<https://huggingface.co/api/models/x/tree/main?cursor=abc>; rel="next"'), 'https://huggingface.co/api/models/x/tree/main?cursor=abc');
    assert.equal(nextLink('<https://a/1>; rel="prev", <https://a/3>; rel=next'), 'https://a/3');
    assert.equal(nextLink('<https://a/1>; rel="prev"'), undefined);
    assert.equal(nextLink(undefined), undefined);
    for (const ok of ['a', 'a/b.safetensors', 'x y/z#1']) assert.ok(safeRepoPath(ok), ok);
    for (const bad of ['', '/etc/passwd', '../x', 'a/../../b', 'a//b', 'a\\b', './a', 'a\u0000b', 42]) assert.ok(!safeRepoPath(bad), String(bad));
  });
});

describe('--include / --exclude (hf download semantics)', () => {
  it('matches whole paths, * across folders, folders by a trailing slash', () => {
    const f = pathFilter(['*.safetensors', '*.json', 'onnx/'], ['*fp16*']);
    assert.ok(f('model.safetensors'));
    assert.ok(f('sub/dir/model.safetensors'));
    assert.ok(f('onnx/model.onnx'));
    assert.ok(f('config.json'));
    assert.ok(!f('model.fp16.safetensors'));
    assert.ok(!f('README.md'));
    assert.ok(pathFilter()('anything'));
    assert.ok(pathFilter(['model-0000[12]-of-*'])('model-00002-of-00003.safetensors'));
    assert.ok(!pathFilter(['model-0000[!12]-of-*'])('model-00002-of-00003.safetensors'));
    assert.ok(pathFilter(['a?c.txt'])('abc.txt'));
    assert.ok(pathFilter(['[weird'])('[weird'));
  });
});

describe('the default tag of an import', () => {
  it('is hf.co/<org>/<name>:<12 hex of the commit>, lowercased to the OCI grammar', () => {
    const commit = 'a'.repeat(40);
    assert.equal(defaultImportTag({ type: 'model', id: 'Qwen/Qwen2.5-0.5B' }, commit), `hf.co/qwen/qwen2.5-0.5b:${'a'.repeat(12)}`);
    assert.equal(defaultImportTag({ type: 'dataset', id: 'stanfordnlp/imdb' }, commit), `hf.co/datasets/stanfordnlp/imdb:${'a'.repeat(12)}`);
    assert.equal(defaultImportTag({ type: 'model', id: 'gpt2' }, commit), `hf.co/gpt2:${'a'.repeat(12)}`);
    assert.equal(defaultImportTag({ type: 'model', id: 'org/name' }, commit, 'http://127.0.0.1:8080'), `127.0.0.1:8080/org/name:${'a'.repeat(12)}`);
    for (const id of ['A_B/C__D', 'x/._weird-.name_', 'o/Mixed.Case_Name-v2']) parseReference(defaultImportTag({ type: 'model', id }, commit));
    assert.equal(referenceComponent('Llama-3.1_8B..Instruct'), 'llama-3.1_8b-instruct');
    assert.equal(referenceComponent('___'), 'x');
  });
});
