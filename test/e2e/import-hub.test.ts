/**
 * `kit import` end to end: the real CLI against a fake Hugging Face Hub on 127.0.0.1 that stands
 * for the real Hub (huggingface.co) and its CDN, serving the documented response shapes
 * (see test/helpers/fake-hub.ts).
 */
import assert from 'node:assert/strict';
import { readFile, readdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT, runKit } from '../helpers/cli.js';
import {
  FakeHub,
  MODEL_COMMIT,
  TOKEN,
  cacheRoot,
  fakeCommit,
  hubEnv,
  importKit,
  modelFiles,
  modelRepo,
  sha256Hex,
} from '../helpers/fake-hub.js';
import { tempDir } from '../helpers/tmp.js';

const require = createRequire(import.meta.url);
const Ajv = require('ajv') as typeof import('ajv').default;
const addFormats = require('ajv-formats') as typeof import('ajv-formats').default;

interface Inspect {
  manifest: { annotations: Record<string, string>; layers: Array<{ mediaType: string; annotations: Record<string, string> }> };
  config: { descriptor: Record<string, unknown>; config: Record<string, unknown> };
}

const DATA_COMMIT_1 = fakeCommit('data-v1');
const DATA_COMMIT_2 = fakeCommit('data-v2');

describe('kit import from a Hub (a fake Hub standing for huggingface.co)', () => {
  let hub: FakeHub;
  before(async () => {
    hub = await FakeHub.start({
      pageSize: 3, // the real Hub pages at 1000; 3 makes this small repository span several pages
      validTokens: [TOKEN],
      repos: [
        modelRepo(),
        {
          type: 'dataset',
          id: 'test-org/reviews',
          refs: { main: DATA_COMMIT_2, 'v1.0': DATA_COMMIT_1 },
          commits: {
            [DATA_COMMIT_1]: [
              { path: 'README.md', content: Buffer.from('---\nlicense: cc-by-4.0\ntask_categories: [text-classification]\n---\n# Reviews\n') },
              { path: 'data/train-00000-of-00001.parquet', content: Buffer.from('PAR1 train v1 PAR1'), lfs: true },
              { path: 'data/test-00000-of-00001.parquet', content: Buffer.from('PAR1 test v1 PAR1'), lfs: true },
            ],
            [DATA_COMMIT_2]: [{ path: 'data/train-00000-of-00001.parquet', content: Buffer.from('PAR1 train v2 PAR1'), lfs: true }],
          },
        },
      ],
    });
  });
  after(() => hub.close());

  it('imports a model repository at a pinned commit, enriched, with provenance, the token never leaving the Hub', async () => {
    const home = await tempDir();
    const env = await hubEnv(hub.url, { HF_TOKEN: TOKEN });
    const r = await importKit(['test-org/Tiny-Model', '--concurrency', '3'], home, env);
    assert.equal(r.code, 0, r.stderr);
    const port = new URL(hub.url).port;
    const ref = `127.0.0.1:${port}/test-org/tiny-model:${MODEL_COMMIT.slice(0, 12)}`;
    assert.match(r.stdout, new RegExp(`Imported test-org/Tiny-Model at ${MODEL_COMMIT} \\(7 files`));
    assert.match(r.stdout, new RegExp(`Packed ${ref.replace(/\./g, '\\.')}`));
    // Progress per file on stderr (not a terminal: one line per finished file).
    for (const f of ['model.safetensors', 'config.json', 'onnx/model.onnx']) assert.match(r.stderr, new RegExp(`Downloading: ${f.replace('.', '\\.')}`));

    // Pinned: the revision was resolved once, then everything was fetched at the commit.
    const hubReqs = hub.hubRequests();
    assert.ok(hubReqs.some((q) => q.path === '/api/models/test-org/Tiny-Model/revision/main'));
    const treeReqs = hubReqs.filter((q) => q.path.startsWith(`/api/models/test-org/Tiny-Model/tree/${MODEL_COMMIT}`));
    assert.ok(treeReqs.length >= 3, `the listing spans pages: ${treeReqs.map((q) => q.path).join(' ')}`);
    assert.ok(treeReqs.slice(1).every((q) => q.path.includes('cursor=')));
    const resolves = hubReqs.filter((q) => q.path.includes('/resolve/'));
    assert.ok(resolves.length >= 7 && resolves.every((q) => q.path.startsWith(`/test-org/Tiny-Model/resolve/${MODEL_COMMIT}/`)));
    assert.ok(!resolves.some((q) => q.path.includes('.gitattributes')), 'hidden files are not downloaded');
    // The token went to the Hub, and never to the CDN it redirected to.
    assert.ok(hubReqs.every((q) => q.authorization === `Bearer ${TOKEN}`));
    const cdnReqs = hub.cdnRequests();
    assert.equal(cdnReqs.length, 3, 'the three LFS files came from the CDN');
    assert.ok(cdnReqs.every((q) => q.authorization === undefined), 'no Authorization to the CDN');

    const inspect = JSON.parse((await runKit(['inspect', ref], { home })).stdout) as Inspect;
    const sourceURL = `${hub.url}/test-org/Tiny-Model`;
    assert.equal(inspect.manifest.annotations['org.opencontainers.image.source'], sourceURL);
    assert.equal(inspect.manifest.annotations['org.opencontainers.image.revision'], MODEL_COMMIT);
    // paramSize from the safetensors header, precision from its dtypes, architecture from config.json.
    assert.deepEqual(inspect.config.config, { format: 'safetensors', architecture: 'LlamaForCausalLM', paramSize: '1.2M', precision: 'bf16' });
    const schema = JSON.parse(await readFile(join(REPO_ROOT, 'test', 'schemas', 'modelpack-config.schema.json'), 'utf8')) as object;
    const ajv = new Ajv({ strict: true, allErrors: true });
    addFormats(ajv);
    assert.ok(ajv.validate(schema, inspect.config), JSON.stringify(ajv.errors));
    assert.equal(inspect.config.descriptor['sourceURL'], sourceURL);
    assert.equal(inspect.config.descriptor['revision'], MODEL_COMMIT);
    assert.equal(inspect.config.descriptor['family'], 'llama');
    assert.equal(inspect.config.descriptor['docURL'], `${sourceURL}/blob/${MODEL_COMMIT}/README.md`);
    assert.deepEqual(inspect.config.descriptor['licenses'], ['Apache-2.0']);
    assert.equal(inspect.config.descriptor['name'], 'Tiny-Model');
    const paths = inspect.manifest.layers.map((l) => l.annotations['org.cncf.model.filepath']).sort();
    assert.deepEqual(paths, ['README.md', 'config.json', 'generation_config.json', 'model.safetensors', 'onnx/model.onnx', 'tokenizer.json', 'tokenizer.model']);

    // The Kitfile records what the card, config.json and the safetensors header said.
    const kitfile = (await runKit(['info', ref], { home })).stdout;
    for (const line of ['paramSize: 1.2M', 'precision: bf16', 'architecture: LlamaForCausalLM', 'baseModel: org/base-model', 'pipelineTag: text-generation', `revision: ${MODEL_COMMIT}`, `sourceURL: ${sourceURL}`, 'license: Apache-2.0']) {
      assert.ok(kitfile.includes(line), `${line} in\n${kitfile}`);
    }

    // Unpacked, the files are the Hub's bytes.
    const out = join(await tempDir(), 'out');
    assert.equal((await runKit(['unpack', ref, '-d', out], { home })).code, 0);
    for (const f of modelFiles().filter((x) => !x.path.startsWith('.'))) assert.equal(sha256Hex(await readFile(join(out, f.path))), sha256Hex(f.content), f.path);
    // The downloads are gone once packed (the store has the bytes).
    const left = await readdir(join(cacheRoot(home), 'models', 'test-org', 'Tiny-Model')).catch((): string[] => []);
    assert.ok(!left.includes(MODEL_COMMIT), `download area removed: ${left.join(',')}`);
  });

  it('imports a dataset repository at a tag, with --include and an explicit tag, as JSON', async () => {
    const home = await tempDir();
    const env = await hubEnv(hub.url); // anonymous: a public dataset needs no token
    const before = hub.requests.length;
    const r = await importKit(['hf://datasets/test-org/reviews', '--revision', 'v1.0', '--include', 'data/', '--include', '*.md', '-t', 'registry.example.com/data/reviews:v1', '--json'], home, env);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { commit: string; repoType: string; files: { count: number }; tags: string[]; kitfile: { datasets: Array<{ path: string }>; package: { license: string } } };
    assert.equal(result.commit, DATA_COMMIT_1);
    assert.equal(result.repoType, 'dataset');
    assert.equal(result.files.count, 3);
    assert.deepEqual(result.tags, ['registry.example.com/data/reviews:v1']);
    assert.deepEqual(result.kitfile.datasets.map((d) => d.path), ['data']);
    assert.equal(result.kitfile.package.license, 'CC-BY-4.0');
    const reqs = hub.requests.slice(before);
    assert.ok(reqs.some((q) => q.path === '/api/datasets/test-org/reviews/revision/v1.0'));
    assert.ok(reqs.filter((q) => q.path.includes('/resolve/')).every((q) => q.path.startsWith(`/datasets/test-org/reviews/resolve/${DATA_COMMIT_1}/`)));
    assert.ok(reqs.every((q) => q.authorization === undefined));
    const out = join(await tempDir(), 'out');
    assert.equal((await runKit(['unpack', 'registry.example.com/data/reviews:v1', '-d', out], { home })).code, 0);
    assert.equal(await readFile(join(out, 'data', 'train-00000-of-00001.parquet'), 'utf8'), 'PAR1 train v1 PAR1');

    // --exclude everything selected: a clear usage error, before any download.
    const none = await importKit(['hf://datasets/test-org/reviews', '--exclude', '*'], home, env);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no files .* are selected/);
  });

  it('imports from a full Hub URL naming a revision, sending the configured token to the configured Hub only', async () => {
    const home = await tempDir();
    const env = await hubEnv(hub.url, { HF_TOKEN: TOKEN });
    const r = await importKit([`${hub.url}/test-org/Tiny-Model/tree/main`, '-t', 'x.io/m/tiny:1', '--include', '*.json'], home, env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\(3 files/);
    // A URL on the configured endpoint gets the configured token.
    assert.ok(hub.hubRequests().slice(-3).every((q) => q.authorization === `Bearer ${TOKEN}`));
    const st = await stat(join(home, 'store', 'index.json'));
    assert.ok(st.size > 0);
  });
});
