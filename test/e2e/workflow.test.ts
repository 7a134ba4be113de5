import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, cp, utimes, chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { EXAMPLE, REPO_ROOT, runKit } from '../helpers/cli.js';
import { diffTrees, exampleSkip, snapshotTree } from '../helpers/tree.js';
import { tempDir } from '../helpers/tmp.js';

const require = createRequire(import.meta.url);
const Ajv = require('ajv') as typeof import('ajv').default;
const addFormats = require('ajv-formats') as typeof import('ajv-formats').default;

async function hasCommand(cmd: string): Promise<boolean> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => execFile('sh', ['-c', `command -v ${cmd}`], (err) => resolve(!err)));
}

const HAS_SKOPEO = await hasCommand('skopeo');
const REF = 'registry.example.com/team/sentiment:1.0';
const EPOCH = '1700000000';

interface Inspect {
  digest: string;
  manifest: { artifactType: string; config: { mediaType: string }; layers: Array<{ mediaType: string; digest: string; annotations?: Record<string, string> }>; annotations: Record<string, string> };
  config: { modelfs: { diffIds: string[] }; descriptor: Record<string, unknown>; config: Record<string, unknown> };
}

async function ok(args: string[], opts: Parameters<typeof runKit>[1]): Promise<string> {
  const r = await runKit(args, opts);
  assert.equal(r.code, 0, `kit ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

describe('pack -> list -> inspect -> info -> unpack on the example project', () => {
  let home: string;
  let inspect: Inspect;
  before(async () => {
    home = await tempDir();
    await ok(['pack', EXAMPLE, '-t', `${REF},registry.example.com/team/sentiment:latest`], { home, env: { SOURCE_DATE_EPOCH: EPOCH } });
    inspect = JSON.parse(await ok(['inspect', REF], { home })) as Inspect;
  });

  it('lists both tags with maintainer, name, size and digest', async () => {
    const table = await ok(['list'], { home });
    const lines = table.trim().split('\n');
    assert.match(lines[0]!, /^REPOSITORY\s+TAG\s+MAINTAINER\s+NAME\s+SIZE\s+DIGEST$/);
    assert.equal(lines.length, 3);
    assert.match(table, /registry\.example\.com\/team\/sentiment\s+1\.0\s+Example ML Team\s+tiny-sentiment\s+\d/);
    const rows = JSON.parse(await ok(['list', '--json'], { home })) as Array<{ tag: string; digest: string; size: number }>;
    assert.deepEqual(rows.map((r) => r.tag).sort(), ['1.0', 'latest']);
    assert.equal(rows[0]!.digest, inspect.digest);
    assert.ok(rows[0]!.size > 150_000);
    assert.equal((JSON.parse(await ok(['list', 'other.io/x', '--format', 'json'], { home })) as unknown[]).length, 0);
  });

  it('writes a ModelPack manifest: artifactType, config type, one raw layer per weight file, annotations', () => {
    const m = inspect.manifest;
    assert.equal(m.artifactType, 'application/vnd.cncf.model.manifest.v1+json');
    assert.equal(m.config.mediaType, 'application/vnd.cncf.model.config.v1+json');
    const byPath = new Map(m.layers.map((l) => [l.annotations?.['org.cncf.model.filepath'], l.mediaType]));
    assert.equal(byPath.get('models/sentiment.safetensors'), 'application/vnd.cncf.model.weight.v1.raw');
    assert.equal(byPath.get('models/adapter.safetensors'), 'application/vnd.cncf.model.weight.v1.raw');
    assert.equal(byPath.get('models/config.json'), 'application/vnd.cncf.model.weight.config.v1.raw');
    assert.equal(byPath.get('models/tokenizer.json'), 'application/vnd.cncf.model.weight.config.v1.raw');
    assert.equal(byPath.get('data/train.csv'), 'application/vnd.cncf.model.dataset.v1.raw');
    assert.equal(byPath.get('src'), 'application/vnd.cncf.model.code.v1.tar');
    assert.equal(byPath.get('docs'), 'application/vnd.cncf.model.doc.v1.tar');
    assert.equal(byPath.get('prompts/fallback.md'), 'application/vnd.cncf.model.doc.v1.raw');
    for (const l of m.layers) {
      const meta = JSON.parse(l.annotations!['org.cncf.model.file.metadata+json']!) as Record<string, unknown>;
      assert.deepEqual(Object.keys(meta).sort(), ['gid', 'mode', 'mtime', 'name', 'size', 'typeflag', 'uid']);
    }
    assert.equal(m.annotations['org.opencontainers.image.created'], '2023-11-14T22:13:20Z');
    assert.match(m.annotations['ml.kitops.modelkit.kitfile']!, /name: tiny-sentiment/);
  });

  it('writes a config that satisfies the model-spec schema, one diffId per layer', async () => {
    const schema = JSON.parse(await readFile(join(REPO_ROOT, 'test', 'schemas', 'modelpack-config.schema.json'), 'utf8')) as object;
    const ajv = new Ajv({ strict: true, allErrors: true });
    addFormats(ajv);
    const valid = ajv.validate(schema, inspect.config);
    assert.ok(valid, JSON.stringify(ajv.errors));
    assert.equal(inspect.config.modelfs.diffIds.length, inspect.manifest.layers.length);
    assert.equal(inspect.config.descriptor.name, 'tiny-sentiment');
    assert.deepEqual(inspect.config.descriptor.authors, ['Example ML Team']);
    assert.deepEqual(inspect.config.descriptor.licenses, ['Apache-2.0']);
    assert.equal(inspect.config.descriptor.createdAt, '2023-11-14T22:13:20Z');
    assert.equal(inspect.config.config.format, 'safetensors');
    assert.equal(inspect.config.config.paramSize, '33K');
    // raw layers: the diffId is the digest itself
    inspect.manifest.layers.forEach((l, i) => {
      if (l.mediaType.endsWith('.raw')) assert.equal(inspect.config.modelfs.diffIds[i], l.digest);
    });
  });

  it('info prints the Kitfile and single fields', async () => {
    const text = await ok(['info', REF], { home });
    assert.equal(text, await readFile(join(EXAMPLE, 'Kitfile'), 'utf8'));
    assert.equal((await ok(['info', REF, '--filter', '.model.name'], { home })).trim(), 'tiny-sentiment');
    assert.equal((await ok(['info', REF, '--filter', '.datasets[1].path'], { home })).trim(), 'data/test.csv');
    assert.deepEqual(JSON.parse(await ok(['info', REF, '--filter', '.package.authors', '--json'], { home })), ['Example ML Team']);
  });

  it('unpack restores a byte-identical tree with modes, and the Kitfile', async () => {
    const out = join(await tempDir(), 'out');
    await ok(['unpack', REF, '-d', out], { home });
    assert.deepEqual(diffTrees(await snapshotTree(EXAMPLE, exampleSkip), await snapshotTree(out)), []);
    const mode = (await snapshotTree(out)).get('src/run.sh')!.mode;
    assert.equal(mode, 0o755);
  });

  it('unpack by digest works too', async () => {
    const out = join(await tempDir(), 'out');
    await ok(['unpack', inspect.digest, '-d', out, '--filter', 'kitfile'], { home });
    assert.deepEqual([...(await snapshotTree(out)).keys()], ['Kitfile']);
  });

  it('is readable by skopeo as an OCI layout', { skip: HAS_SKOPEO ? false : 'skopeo is not installed (.ci/run installs it)' }, async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const { stdout } = await promisify(execFile)('skopeo', ['inspect', '--raw', `oci:${join(home, 'store')}:${REF}`]);
    assert.equal(JSON.parse(stdout).artifactType, 'application/vnd.cncf.model.manifest.v1+json');
  });
});


describe('reproducibility', () => {
  async function checkout(): Promise<string> {
    const dir = join(await tempDir(), 'project');
    await cp(EXAMPLE, dir, { recursive: true });
    // Different times and permission noise than the original checkout.
    await utimes(join(dir, 'models', 'sentiment.safetensors'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    await chmod(join(dir, 'data', 'train.csv'), 0o600);
    return dir;
  }

  for (const flags of [[], ['--layer-format', 'tar', '--compression', 'gzip'], ['--compression', 'zstd'], ['--format', 'kitops']]) {
    it(`gives the same digest from two checkouts into two stores ${flags.join(' ') || '(defaults)'}`, async () => {
      const env = { SOURCE_DATE_EPOCH: EPOCH };
      const a = JSON.parse(await ok(['pack', EXAMPLE, '-t', 'x.io/r/m:1', '--json', ...flags], { home: await tempDir(), env })) as { digest: string };
      const b = JSON.parse(await ok(['pack', await checkout(), '-t', 'y.io/other/name:2', '--json', ...flags], { home: await tempDir(), env })) as { digest: string };
      assert.equal(a.digest, b.digest);
    });
  }

  it('changes only the layer of a changed weight file', async () => {
    const env = { SOURCE_DATE_EPOCH: EPOCH };
    const dir = await checkout();
    const home = await tempDir();
    const a = JSON.parse(await ok(['pack', dir, '-t', 'x.io/r/m:1', '--json'], { home, env })) as { layers: Array<{ path: string; digest: string }> };
    await writeFile(join(dir, 'models', 'adapter.safetensors'), 'changed');
    const b = JSON.parse(await ok(['pack', dir, '-t', 'x.io/r/m:2', '--json'], { home, env })) as { layers: Array<{ path: string; digest: string }> };
    const changed = a.layers.filter((l, i) => l.digest !== b.layers[i]!.digest).map((l) => l.path);
    assert.deepEqual(changed, ['models/adapter.safetensors']);
  });
});
