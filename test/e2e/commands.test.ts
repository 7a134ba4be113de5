import { describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { cp, mkdir, readFile, readdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { EXAMPLE, KIT_BIN, runKit } from '../helpers/cli.js';
import { craftArtifact } from '../helpers/craft.js';
import { diffTrees, exampleSkip, snapshotTree } from '../helpers/tree.js';
import { tempDir } from '../helpers/tmp.js';

async function ok(args: string[], opts: Parameters<typeof runKit>[1]): Promise<string> {
  const r = await runKit(args, opts);
  assert.equal(r.code, 0, `kit ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

async function packed(flags: string[] = [], ref = 'x.io/team/model:1'): Promise<string> {
  const home = await tempDir();
  await ok(['pack', EXAMPLE, '-t', ref, ...flags], { home });
  return home;
}

describe('KitOps ModelKit format', () => {
  it('packs the KitOps format and unpacks it to the same tree', async () => {
    const home = await packed(['--format', 'kitops', '--compression', 'gzip']);
    const inspect = JSON.parse(await ok(['inspect', 'x.io/team/model:1'], { home })) as {
      manifest: { artifactType: string; config: { mediaType: string }; layers: Array<{ mediaType: string; digest: string }> };
      config: { model: { layerInfo: { digest: string }; parts: unknown[] }; datasets: Array<{ layerInfo: { digest: string } }> };
    };
    assert.equal(inspect.manifest.artifactType, 'application/vnd.kitops.modelkit.manifest.v1+json');
    assert.equal(inspect.manifest.config.mediaType, 'application/vnd.kitops.modelkit.config.v1+json');
    const types = inspect.manifest.layers.map((l) => l.mediaType);
    assert.ok(types.includes('application/vnd.kitops.modelkit.model.v1.tar+gzip'));
    assert.equal(types.filter((t) => t === 'application/vnd.kitops.modelkit.modelpart.v1.tar+gzip').length, 3);
    assert.ok(types.includes('application/vnd.kitops.modelkit.prompts.v1.tar+gzip'));
    assert.ok(inspect.manifest.layers.some((l) => l.digest === inspect.config.model.layerInfo.digest));
    const out = join(await tempDir(), 'out');
    await ok(['unpack', 'x.io/team/model:1', '-d', out], { home });
    assert.deepEqual(diffTrees(await snapshotTree(EXAMPLE, exampleSkip), await snapshotTree(out)), []);
  });

  it('reads a KitOps ModelKit without the Kitfile annotation (Kitfile from the config)', async () => {
    const home = await tempDir();
    const { makeTar } = await import('../helpers/craft.js');
    const tar = await makeTar([{ name: 'weights.bin', body: 'WEIGHTS', mode: 0o644 }]);
    const { sha256 } = await import('../../src/oci/digest.js');
    await craftArtifact(join(home, 'store'), 'x.io/kitops/made:1', [{ mediaType: 'application/vnd.kitops.modelkit.model.v1.tar', content: tar }], {
      artifactType: 'application/vnd.kitops.modelkit.manifest.v1+json',
      configMediaType: 'application/vnd.kitops.modelkit.config.v1+json',
      config: { manifestVersion: '1.0.0', package: { name: 'made' }, model: { name: 'm', path: 'weights.bin', layerInfo: { digest: sha256(tar), diffId: sha256(tar) } } },
    });
    const out = join(await tempDir(), 'out');
    await ok(['unpack', 'x.io/kitops/made:1', '-d', out], { home });
    assert.equal(await readFile(join(out, 'weights.bin'), 'utf8'), 'WEIGHTS');
    assert.match(await readFile(join(out, 'Kitfile'), 'utf8'), /path: weights\.bin/);
    assert.equal((await ok(['info', 'x.io/kitops/made:1', '--filter', '.model.name'], { home })).trim(), 'm');
  });
});

describe('ModelPack artifacts made by other tools', () => {
  it('places files by their filepath annotation and writes a generated Kitfile', async () => {
    const home = await tempDir();
    await craftArtifact(join(home, 'store'), 'x.io/modctl/made:1', [
      { mediaType: 'application/vnd.cncf.model.weight.v1.raw', content: Buffer.from('W1'), annotations: { 'org.cncf.model.filepath': 'model/w1.safetensors' } },
      { mediaType: 'application/vnd.cnai.model.weight.config.v1.raw', content: Buffer.from('{}'), annotations: { 'org.cnai.model.filepath': 'model/config.json' } },
      { mediaType: 'application/vnd.cncf.model.doc.v1.raw', content: Buffer.from('# hi'), annotations: { 'org.cncf.model.filepath': 'README.md' } },
    ]);
    const out = join(await tempDir(), 'out');
    await ok(['unpack', 'x.io/modctl/made:1', '-d', out], { home });
    assert.equal(await readFile(join(out, 'model', 'w1.safetensors'), 'utf8'), 'W1');
    assert.equal(await readFile(join(out, 'model', 'config.json'), 'utf8'), '{}');
    const kitfile = await readFile(join(out, 'Kitfile'), 'utf8');
    assert.match(kitfile, /path: model\/w1\.safetensors/);
    assert.match(kitfile, /path: README\.md/);
    const list = JSON.parse(await ok(['list', '--json'], { home })) as Array<{ name: string }>;
    assert.equal(list[0]!.name, 'crafted');
  });
});

describe('unpack filters and existing files', () => {
  it('unpacks only what the filters select', async () => {
    const home = await packed();
    const out = join(await tempDir(), 'out');
    await ok(['unpack', 'x.io/team/model:1', '-d', out, '--filter', 'datasets:training', '--filter', 'kitfile'], { home });
    assert.deepEqual([...(await snapshotTree(out)).keys()].sort(), ['Kitfile', 'data', 'data/train.csv']);
    const out2 = join(await tempDir(), 'out');
    await ok(['unpack', 'x.io/team/model:1', '-d', out2, '--filter', 'model'], { home });
    assert.deepEqual([...(await snapshotTree(out2)).keys()].filter((p) => !p.endsWith('models')).sort(), [
      'models/adapter.safetensors',
      'models/config.json',
      'models/sentiment.safetensors',
      'models/tokenizer.json',
    ]);
    const out3 = join(await tempDir(), 'out');
    await ok(['unpack', 'x.io/team/model:1', '-d', out3, '--filter', 'code,docs'], { home });
    const keys = [...(await snapshotTree(out3)).keys()];
    assert.ok(keys.includes('src/run.sh') && keys.includes('docs/model-card.md') && keys.includes('README.md'));
    assert.ok(!keys.includes('Kitfile') && !keys.some((k) => k.startsWith('models')));
    const bad = await runKit(['unpack', 'x.io/team/model:1', '-d', out3, '--filter', 'weights'], { home });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown filter type "weights"/);
  });

  it('refuses to overwrite existing files unless told, and never half-writes', async () => {
    const home = await packed();
    const out = join(await tempDir(), 'out');
    await mkdir(join(out, 'models'), { recursive: true });
    await writeFile(join(out, 'models', 'config.json'), 'mine');
    const r = await runKit(['unpack', 'x.io/team/model:1', '-d', out], { home });
    assert.equal(r.code, 4);
    assert.match(r.stderr, /models\/config\.json already exists/);
    assert.match(r.stderr, /--overwrite/);
    assert.deepEqual(await readdir(out), ['models']);
    assert.deepEqual(await readdir(join(out, 'models')), ['config.json']);

    await ok(['unpack', 'x.io/team/model:1', '-d', out, '--ignore-existing'], { home });
    assert.equal(await readFile(join(out, 'models', 'config.json'), 'utf8'), 'mine');
    assert.ok((await readdir(join(out, 'models'))).includes('sentiment.safetensors'));

    await ok(['unpack', 'x.io/team/model:1', '-d', out, '--overwrite'], { home });
    assert.equal(await readFile(join(out, 'models', 'config.json'), 'utf8'), await readFile(join(EXAMPLE, 'models', 'config.json'), 'utf8'));
  });
});

describe('pack run again', () => {
  it('does not read files unchanged since the last pack, and does read a file changed in place', async () => {
    const home = await tempDir();
    const project = join(await tempDir(), 'p');
    await cp(EXAMPLE, project, { recursive: true });
    // Files written seconds ago are never trusted by their stat (a change within the same clock tick would not show).
    const hourAgo = new Date(Date.now() - 3600_000);
    for (const f of await readdir(project, { recursive: true })) await utimes(join(project, f), hourAgo, hourAgo);
    const settle = () => new Promise((r) => setTimeout(r, 1100)); // utimes itself sets the ctime to now
    await settle();
    const packJson = async (tag: string) => JSON.parse(await ok(['pack', project, '-t', tag, '--json'], { home })) as { unchangedFiles: number; layers: Array<{ path: string; digest: string }> };
    const first = await packJson('x.io/team/model:1');
    assert.equal(first.unchangedFiles, 0);
    const second = await packJson('x.io/team/model:2');
    // Every single-file (raw) layer; folders packed as tar layers are read again.
    const raw = second.unchangedFiles;
    assert.ok(raw >= 4 && raw < first.layers.length, `${raw} of ${first.layers.length} layers`);
    assert.deepEqual(second.layers, first.layers);

    // Same size, other bytes, the old mtime put back: only the ctime tells, and it does.
    const weights = join(project, 'models', 'sentiment.safetensors');
    const bytes = await readFile(weights);
    bytes[0] = bytes[0]! ^ 0xff;
    await writeFile(weights, bytes);
    await utimes(weights, hourAgo, hourAgo);
    await settle();
    const third = await packJson('x.io/team/model:3');
    assert.equal(third.unchangedFiles, raw - 1);
    const layer = third.layers.find((l) => l.path === 'models/sentiment.safetensors')!;
    assert.equal(layer.digest, `sha256:${createHash('sha256').update(bytes).digest('hex')}`);
    const v = await runKit(['store', 'verify'], { home });
    assert.equal(v.code, 0, v.stderr);
  });
});

describe('unpack run again', () => {
  it('takes files already holding the artifact bytes as done, and still refuses a changed file of the same size', async () => {
    const home = await packed();
    const out = join(await tempDir(), 'out');
    await ok(['unpack', 'x.io/team/model:1', '-d', out], { home });
    const first = await snapshotTree(out);
    // Again into the same folder: nothing to do, nothing changed, no flag needed.
    await ok(['unpack', 'x.io/team/model:1', '-d', out], { home });
    assert.deepEqual(diffTrees(first, await snapshotTree(out)), []);

    // A file the user changed (same size, other bytes) is theirs: refused, left as it is.
    const weights = join(out, 'models', 'sentiment.safetensors');
    const bytes = await readFile(weights);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    await writeFile(weights, bytes);
    const r = await runKit(['unpack', 'x.io/team/model:1', '-d', out], { home });
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /models\/sentiment\.safetensors already exists/);
    assert.deepEqual(await readFile(weights), bytes);
  });
});

describe('tag and remove', () => {
  it('tags, untags, deletes on the last tag and collects only unshared blobs', async () => {
    const home = await packed();
    await ok(['tag', 'x.io/team/model:1', 'other.io/copy/model:stable'], { home });
    const blobs = async () => (await readdir(join(home, 'store', 'blobs', 'sha256'))).length;
    const before = await blobs();
    await ok(['remove', 'x.io/team/model:1'], { home });
    assert.equal(await blobs(), before, 'still tagged: nothing collected');
    assert.deepEqual((JSON.parse(await ok(['list', '--json'], { home })) as Array<{ reference: string }>).map((r) => r.reference), ['other.io/copy/model:stable']);

    // A second artifact sharing most layers: removing the first keeps the shared blobs.
    const dir = join(await tempDir(), 'p');
    await cp(EXAMPLE, dir, { recursive: true });
    await writeFile(join(dir, 'prompts', 'fallback.md'), 'changed prompt\n');
    await ok(['pack', dir, '-t', 'x.io/team/model:2'], { home });
    const r = JSON.parse(await ok(['remove', 'other.io/copy/model:stable', '--json'], { home })) as { removedBlobs: number };
    assert.equal(r.removedBlobs, 3, 'manifest, config and the one unshared prompt layer');
    const out = join(await tempDir(), 'out');
    await ok(['unpack', 'x.io/team/model:2', '-d', out], { home });
    assert.equal(await readFile(join(out, 'prompts', 'fallback.md'), 'utf8'), 'changed prompt\n');

    const missing = await runKit(['remove', 'x.io/team/model:9'], { home });
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /x\.io\/team\/model:9/);
    await ok(['remove', '--all'], { home });
    assert.equal(await blobs(), 0);
  });

  it('refuses to remove by digest while several tags point to it, unless forced', async () => {
    const home = await packed();
    await ok(['tag', 'x.io/team/model:1', 'x.io/team/model:2'], { home });
    const digest = (JSON.parse(await ok(['list', '--json'], { home })) as Array<{ digest: string }>)[0]!.digest;
    const r = await runKit(['remove', `x.io/team/model@${digest}`], { home });
    assert.equal(r.code, 4);
    await ok(['remove', `x.io/team/model@${digest}`, '--force'], { home });
    assert.deepEqual(JSON.parse(await ok(['list', '--json'], { home })), []);
  });
});

describe('pack inputs', () => {
  it('reads the Kitfile from stdin with -f -', async () => {
    const home = await tempDir();
    const kitfile = 'manifestVersion: 1.0.0\npackage:\n  name: from-stdin\ndocs:\n  - path: README.md\n';
    const r = await runKit(['pack', EXAMPLE, '-f', '-', '-t', 'x.io/a/b:1'], { home, input: kitfile });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await ok(['info', 'x.io/a/b:1', '--filter', '.package.name'], { home })).trim(), 'from-stdin');
  });

  it('lists every Kitfile problem with file:line:column, exit 1, no stack', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'Kitfile'), 'manifestVersion: 1.0.0\nmodel:\n  path: /etc/passwd\n  colour: red\ndatasets:\n  - path: ../outside.csv\n');
    const r = await runKit(['pack', dir, '-t', 'x.io/a/b:1'], { home: await tempDir() });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^kit: /);
    assert.match(r.stderr, /Kitfile:3:\d+: model\.path/);
    assert.match(r.stderr, /Kitfile:4:\d+: model\.colour/);
    assert.match(r.stderr, /Kitfile:6:\d+: datasets\[0\]\.path/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    const v = await runKit(['-v', 'pack', dir, '-t', 'x.io/a/b:1'], { home: await tempDir() });
    assert.match(v.stderr, /\n\s+at /, '-v shows the stack');
  });

  it('follows symlinks inside the context and refuses one that leaves it', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'data'));
    await writeFile(join(dir, 'real.csv'), 'a,b\n');
    await symlink('../real.csv', join(dir, 'data', 'linked.csv'));
    await writeFile(join(dir, 'Kitfile'), 'manifestVersion: 1.0.0\ndatasets:\n  - path: data\n');
    const home = await tempDir();
    await ok(['pack', dir, '-t', 'x.io/a/b:1'], { home });
    const out = join(await tempDir(), 'out');
    await ok(['unpack', 'x.io/a/b:1', '-d', out], { home });
    assert.equal(await readFile(join(out, 'data', 'linked.csv'), 'utf8'), 'a,b\n');

    await symlink('/etc/hostname', join(dir, 'data', 'escape'));
    const r = await runKit(['pack', dir, '-t', 'x.io/a/b:2'], { home });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /data\/escape is a symlink that leads outside the context/);
  });

  it('leaves a path claimed by another entry out of the enclosing one, by component', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'data', 'eval'), { recursive: true });
    await mkdir(join(dir, 'data2'));
    await writeFile(join(dir, 'data', 'train.csv'), 't');
    await writeFile(join(dir, 'data', 'eval', 'e.csv'), 'e');
    await writeFile(join(dir, 'data2', 'x.csv'), 'x');
    await writeFile(join(dir, 'Kitfile'), 'manifestVersion: 1.0.0\ndatasets:\n  - name: all\n    path: data\n  - name: eval\n    path: data/eval\n  - name: two\n    path: data2\n');
    const home = await tempDir();
    await ok(['pack', dir, '-t', 'x.io/a/b:1'], { home });
    const out = join(await tempDir(), 'out');
    await ok(['unpack', 'x.io/a/b:1', '-d', out, '--filter', 'datasets:all'], { home });
    assert.deepEqual([...(await snapshotTree(out)).keys()].sort(), ['data', 'data/train.csv']);
    const out2 = join(await tempDir(), 'out');
    await ok(['unpack', 'x.io/a/b:1', '-d', out2, '--filter', 'datasets:eval,two'], { home });
    assert.deepEqual([...(await snapshotTree(out2)).keys()].sort(), ['data', 'data/eval', 'data/eval/e.csv', 'data2', 'data2/x.csv']);
  });
});

describe('init', () => {
  it('writes a Kitfile for a project that then packs and unpacks', async () => {
    const dir = join(await tempDir(), 'proj');
    await cp(EXAMPLE, dir, { recursive: true });
    const { rm } = await import('node:fs/promises');
    await rm(join(dir, 'Kitfile'));
    await ok(['init', dir, '--name', 'generated', '--author', 'Someone'], { home: await tempDir() });
    const text = await readFile(join(dir, 'Kitfile'), 'utf8');
    assert.match(text, /name: generated/);
    assert.match(text, /Someone/);
    const again = await runKit(['init', dir], { home: await tempDir() });
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /--force/);
    const home = await tempDir();
    await ok(['pack', dir, '-t', 'x.io/gen/m:1'], { home });
    const out = join(await tempDir(), 'out');
    await ok(['unpack', 'x.io/gen/m:1', '-d', out], { home });
    assert.equal(await readFile(join(out, 'models', 'sentiment.safetensors'), 'hex'), await readFile(join(EXAMPLE, 'models', 'sentiment.safetensors'), 'hex'));
  });
});

describe('version and errors', () => {
  it('stops quietly when the reader of its output goes away (kit list | head)', async () => {
    const home = await packed();
    // head exits after one byte; kit's next writes hit a closed pipe (EPIPE).
    const r = spawnSync('sh', ['-c', `for i in 1 2 3 4 5 6 7 8; do "${KIT_BIN}" list; done | head -c 1`], {
      env: { ...process.env, KIT_HOME: home },
      encoding: 'utf8',
    });
    assert.equal(r.stdout.length, 1);
    assert.doesNotMatch(r.stderr, /EPIPE|Error|at /);
  });

  it('prints the version', async () => {
    const home = await tempDir();
    assert.match(await ok(['--version'], { home }), /^\d+\.\d+\.\d+\n$/);
    assert.match(await ok(['version'], { home }), /^kit \d+\.\d+\.\d+ \(node /);
  });

  it('names a missing reference with exit code 3', async () => {
    const r = await runKit(['inspect', 'x.io/none/such:1'], { home: await tempDir() });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /x\.io\/none\/such:1/);
  });

  it('rejects an invalid reference with a usage error', async () => {
    const r = await runKit(['pack', EXAMPLE, '-t', 'Bad/Ref'], { home: await tempDir() });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /invalid reference "Bad\/Ref"/);
  });
});
