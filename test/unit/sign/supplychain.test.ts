import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pack, StoreSink, type PackedArtifact } from '../../../src/artifact/pack.js';
import { LocalStore } from '../../../src/store/local-store.js';
import { attachSupplyChain, findGenerated } from '../../../src/supplychain/attach.js';
import { attachmentSite, readManifest, readVerified } from '../../../src/sign/attachments.js';
import { EXAMPLE, REPO_ROOT } from '../../helpers/cli.js';
import { tempDir } from '../../helpers/tmp.js';

const require = createRequire(import.meta.url);
const Ajv = require('ajv') as typeof import('ajv').default;
const addFormats = require('ajv-formats') as typeof import('ajv-formats').default;

const SCHEMA_DIR = join(REPO_ROOT, 'node_modules', '@cyclonedx', 'cyclonedx-library', 'res', 'schema');

/** The CycloneDX 1.6 JSON schema (as the CycloneDX JavaScript library ships it), with the schemas it refers to. */
async function cycloneDxValidator() {
  const load = async (f: string) => JSON.parse(await readFile(join(SCHEMA_DIR, f), 'utf8')) as Record<string, unknown>;
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addFormat('iri-reference', true);
  ajv.addFormat('idn-email', true);
  // The BOM schema refers to its companions by their file names: register them under those.
  ajv.addSchema({ ...(await load('spdx.SNAPSHOT.schema.json')), $id: 'http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json' });
  ajv.addSchema({ ...(await load('jsf-0.82.SNAPSHOT.schema.json')), $id: 'http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json' });
  return ajv.compile(await load('bom-1.6.SNAPSHOT.schema.json'));
}

async function slsaValidator() {
  // strictRequired off: the ResourceDescriptor's "one of uri, digest, content" is an anyOf of requireds.
  const ajv = new Ajv({ strict: true, strictRequired: false, allErrors: true });
  addFormats(ajv);
  return ajv.compile(JSON.parse(await readFile(join(REPO_ROOT, 'test', 'schemas', 'slsa-provenance-v1.schema.json'), 'utf8')) as object);
}

function sha256Hex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

interface Statement {
  _type: string;
  subject: Array<{ name: string; digest: { sha256: string } }>;
  predicateType: string;
  predicate: {
    buildDefinition: { buildType: string; externalParameters: Record<string, unknown>; resolvedDependencies: Array<{ name?: string; uri?: string; digest: Record<string, string>; annotations?: Record<string, unknown> }> };
    runDetails: { builder: { id: string; version: Record<string, string> } };
  };
}

describe('supply chain documents generated at pack time (kit pack --provenance)', () => {
  let project: string;
  let store: LocalStore;
  let packed: PackedArtifact;
  let commit: string;
  let statement: Statement;
  let bom: Record<string, unknown>;

  before(async () => {
    project = join(await tempDir(), 'project');
    await cp(EXAMPLE, project, { recursive: true });
    const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', '-c', 'commit.gpgsign=false', ...args], { cwd: project, encoding: 'utf8' }).trim();
    git('init', '-q');
    git('add', '-A');
    git('commit', '-qm', 'init');
    git('remote', 'add', 'origin', 'https://ci-bot:s3cr3t-token@git.example.com/team/sentiment.git');
    commit = git('rev-parse', 'HEAD');
    store = await LocalStore.open(join(await tempDir(), 'store'));
    await pack({
      contextDir: project,
      tags: ['registry.example.com/team/sentiment:1.0'],
      format: 'modelpack',
      layerFormat: 'raw',
      compression: 'none',
      sink: new StoreSink(store),
      onPacked: async (p) => {
        packed = p;
        await attachSupplyChain(store, p);
      },
    });
    const site = attachmentSite(store);
    const refs = await site.list(packed.descriptor);
    assert.equal(refs.length, 2, 'provenance and ML-BOM attached as referrers');
    for (const { descriptor } of refs) {
      const m = await readManifest(store, descriptor, 'referrer');
      assert.equal(m.subject?.digest, packed.descriptor.digest, 'the referrer names the artifact as its subject');
      assert.equal(m.config.mediaType, 'application/vnd.oci.empty.v1+json');
      const doc = JSON.parse((await readVerified(store, m.layers[0]!, 'doc')).toString()) as Record<string, unknown>;
      if (descriptor.artifactType === 'application/vnd.in-toto+json') statement = doc as unknown as Statement;
      if (descriptor.artifactType === 'application/vnd.cyclonedx+json') bom = doc;
    }
    assert.ok(statement && bom);
  });

  it('stores the provenance as an in-toto v1 statement about the manifest digest', () => {
    assert.equal(statement._type, 'https://in-toto.io/Statement/v1');
    assert.equal(statement.predicateType, 'https://slsa.dev/provenance/v1');
    assert.deepEqual(statement.subject, [{ name: 'registry.example.com/team/sentiment', digest: { sha256: packed.descriptor.digest.slice(7) } }]);
  });

  it('gives a provenance predicate that has the SLSA v1 fields, and only those', async () => {
    const validate = await slsaValidator();
    assert.ok(validate(statement.predicate), JSON.stringify(validate.errors, null, 2));
  });

  it('names the builder (kit and its version), the Kitfile digest, the git commit and origin (without credentials) and every input file with its sha256', async () => {
    const p = statement.predicate;
    assert.equal(p.runDetails.builder.version['kit'], JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')).version);
    const deps = p.buildDefinition.resolvedDependencies;
    const kitfile = deps.find((d) => d.name === 'Kitfile');
    assert.equal(kitfile?.digest['sha256'], sha256Hex(await readFile(join(project, 'Kitfile'))));
    const git = deps.find((d) => d.digest['gitCommit'] !== undefined);
    assert.equal(git?.digest['gitCommit'], commit);
    assert.match(git?.uri ?? '', /^git\+https:\/\/git\.example\.com\/team\/sentiment\.git@refs\/heads\//);
    assert.ok(!JSON.stringify(statement).includes('s3cr3t-token'), 'credentials in the remote URL are not published');
    const files = deps.filter((d) => d.name !== undefined && d.name !== 'Kitfile' && d.digest['sha256']);
    const expected = ['README.md', 'data/test.csv', 'data/train.csv', 'docs/model-card.md', 'models/adapter.safetensors', 'models/config.json', 'models/sentiment.safetensors', 'models/tokenizer.json', 'prompts/fallback.md'];
    for (const path of expected) {
      const dep = files.find((d) => d.name === path);
      assert.ok(dep, `${path} is listed`);
      assert.equal(dep.digest['sha256'], sha256Hex(await readFile(join(project, path))), `${path} has its own sha256`);
    }
    assert.ok(files.some((d) => d.name!.startsWith('src/')), 'files inside tar layers are listed one by one');
    assert.deepEqual(p.buildDefinition.externalParameters['tags'], ['registry.example.com/team/sentiment:1.0']);
  });

  it('gives an ML-BOM that validates against the CycloneDX 1.6 JSON schema', async () => {
    const validate = await cycloneDxValidator();
    assert.equal(bom['specVersion'], '1.6');
    assert.ok(validate(bom), JSON.stringify(validate.errors, null, 2));
  });

  it('describes the model with its model card, datasets as data components, files with hashes, and licenses', async () => {
    const components = bom['components'] as Array<Record<string, unknown>>;
    const model = components.find((c) => c['type'] === 'machine-learning-model')!;
    assert.equal(model['name'], 'tiny-sentiment');
    assert.deepEqual(model['licenses'], [{ expression: 'Apache-2.0' }]);
    const props = model['properties'] as Array<{ name: string; value: string }>;
    assert.ok(props.some((p) => p.name === 'kit:model:framework' && p.value === 'pytorch'));
    const card = model['modelCard'] as { modelParameters: { datasets: Array<{ ref: string }> }; properties: Array<{ name: string; value: string }> };
    assert.equal(card.modelParameters.datasets.length, 2);
    assert.deepEqual(JSON.parse(card.properties.find((p) => p.name === 'kit:parameters')!.value), { paramSize: '33K', precision: 'fp32' });
    const data = components.filter((c) => c['type'] === 'data');
    assert.deepEqual(data.map((d) => d['name']).sort(), ['evaluation', 'training']);
    assert.deepEqual(data.find((d) => d['name'] === 'training')!['licenses'], [{ expression: 'CC-BY-4.0' }]);
    const file = components.find((c) => c['type'] === 'file' && c['name'] === 'models/sentiment.safetensors')!;
    assert.deepEqual(file['hashes'], [{ alg: 'SHA-256', content: sha256Hex(await readFile(join(project, 'models/sentiment.safetensors'))) }]);
    const meta = bom['metadata'] as { component: { hashes: Array<{ content: string }> } };
    assert.equal(meta.component.hashes[0]!.content, packed.descriptor.digest.slice(7));
  });

  it('lets kit attest find the generated documents as predicates', async () => {
    const site = attachmentSite(store);
    assert.deepEqual(await findGenerated(site, packed.descriptor, 'https://slsa.dev/provenance/v1'), statement.predicate);
    assert.deepEqual(await findGenerated(site, packed.descriptor, 'https://cyclonedx.org/bom'), bom);
    assert.equal(await findGenerated(site, packed.descriptor, 'https://spdx.dev/Document'), undefined);
  });

  it('leaves the project without git alone (no source entry) and still lists the inputs', async () => {
    const plain = join(await tempDir(), 'plain');
    await cp(EXAMPLE, plain, { recursive: true });
    await writeFile(join(plain, 'README.md'), '# changed\n');
    const s2 = await LocalStore.open(join(await tempDir(), 'store'));
    let p2: PackedArtifact | undefined;
    await pack({ contextDir: plain, tags: ['r.example.com/x:1'], format: 'modelpack', layerFormat: 'raw', compression: 'none', sink: new StoreSink(s2), onPacked: async (p) => void (p2 = p, await attachSupplyChain(s2, p)) });
    const site = attachmentSite(s2);
    const predicate = (await findGenerated(site, p2!.descriptor, 'https://slsa.dev/provenance/v1')) as Statement['predicate'];
    assert.ok(!predicate.buildDefinition.resolvedDependencies.some((d) => d.digest['gitCommit']));
    assert.equal(predicate.buildDefinition.resolvedDependencies.find((d) => d.name === 'README.md')?.digest['sha256'], sha256Hex(Buffer.from('# changed\n')));
  });
});
