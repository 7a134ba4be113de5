import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { KitError } from '../../../src/errors.js';
import { generateKitfile, sanitizePackageName, writeKitfile } from '../../../src/kitfile/init.js';
import { loadKitfile, parseKitfile, serializeKitfile } from '../../../src/kitfile/load.js';
import { tempDir } from '../../helpers/tmp.js';

/** Create files under `root`; a number is a size (filled with zeros), a string the content. */
async function makeTree(root: string, files: Record<string, number | string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const abs = join(root, rel);
    await mkdir(dirname(abs), { recursive: true });
    await writeFile(abs, typeof content === 'number' ? Buffer.alloc(content) : content);
  }
}

describe('generateKitfile', () => {
  it('classifies a realistic project', async () => {
    const root = join(await tempDir(), 'My Project!');
    await makeTree(root, {
      'README.md': '# demo',
      LICENSE: 'Apache',
      '.env': 'SECRET=1',
      '.kitignore': 'checkpoints/\n*.log\n',
      'requirements.txt': 'torch',
      'train.py': 'print()',
      'train.log': 'x',
      'model/config.json': '{}',
      'model/generation_config.json': '{}',
      'model/tokenizer.json': '{}',
      'model/tokenizer_config.json': '{}',
      'model/special_tokens_map.json': '{}',
      'model/model.safetensors.index.json': '{}',
      'model/model-00001-of-00003.safetensors': 300,
      'model/model-00002-of-00003.safetensors': 300,
      'model/model-00003-of-00003.safetensors': 100,
      'model/adapter_model.safetensors': 50,
      'extras/small.gguf': 40,
      'data/train.csv': 'a,b',
      'data/eval/holdout.jsonl': '{}',
      'src/pkg/__init__.py': '',
      'src/pkg/model.py': '',
      'src/pkg/__pycache__/model.cpython-311.pyc': 10,
      'docs/guide.md': '',
      'prompts/system.prompt.md': '',
      'notes.prompt': '',
      'configs/a.yaml': '',
      'configs/b.yaml': '',
      'figures/plot.png': 10,
      'checkpoints/step1/optimizer.pt': 1000,
      'node_modules/x/index.js': '',
      '.venv/lib/site.py': '',
      'venv/pyvenv.cfg': '',
      'venv/lib/python3/site-packages/big.bin': 5000,
    });

    const k = await generateKitfile(root, {});
    assert.deepEqual(k, {
      manifestVersion: '1.0.0',
      package: { name: 'my-project' },
      model: {
        name: 'my-project',
        path: 'model/model-00001-of-00003.safetensors',
        format: 'safetensors',
        parts: [
          { path: 'extras/small.gguf', type: 'weights' },
          { path: 'model/adapter_model.safetensors', type: 'adapter' },
          { path: 'model/config.json', type: 'config' },
          { path: 'model/generation_config.json', type: 'config' },
          { path: 'model/model-00002-of-00003.safetensors', type: 'weights' },
          { path: 'model/model-00003-of-00003.safetensors', type: 'weights' },
          { path: 'model/model.safetensors.index.json', type: 'config' },
          { path: 'model/special_tokens_map.json', type: 'tokenizer' },
          { path: 'model/tokenizer.json', type: 'tokenizer' },
          { path: 'model/tokenizer_config.json', type: 'tokenizer' },
        ],
      },
      code: [{ path: 'configs' }, { path: 'requirements.txt' }, { path: 'src' }, { path: 'train.py' }],
      datasets: [{ name: 'data', path: 'data' }],
      docs: [{ path: 'LICENSE' }, { path: 'README.md' }, { path: 'docs' }, { path: 'figures' }],
      prompts: [{ path: 'notes.prompt' }, { path: 'prompts' }],
    });

    // What it writes is a valid Kitfile, and the same folder gives the same text.
    const text = serializeKitfile(k);
    assert.deepEqual(parseKitfile(text, 'Kitfile'), k);
    assert.equal(serializeKitfile(await generateKitfile(root, {})), text);
  });

  it('uses --name, --desc and --author', async () => {
    const root = await tempDir();
    await makeTree(root, { 'model.onnx': 10 });
    const k = await generateKitfile(root, { name: 'custom', description: 'A model', author: 'Jane <j@x.org>' });
    assert.deepEqual(k.package, { name: 'custom', description: 'A model', authors: ['Jane <j@x.org>'] });
    assert.equal(k.model?.name, 'custom');
    assert.equal(k.model?.format, 'onnx');
  });

  it('makes the largest of several unrelated weight files the model', async () => {
    const root = await tempDir();
    await makeTree(root, { 'a.onnx': 10, 'b.onnx': 30, 'c.pt': 20 });
    const k = await generateKitfile(root, {});
    assert.equal(k.model?.path, 'b.onnx');
    assert.deepEqual(k.model?.parts, [
      { path: 'a.onnx', type: 'weights' },
      { path: 'c.pt', type: 'weights' },
    ]);
  });

  it('treats GGUF splits and pytorch_model shards as one model', async () => {
    const root = await tempDir();
    await makeTree(root, {
      'llama-00001-of-00002.gguf': 60,
      'llama-00002-of-00002.gguf': 60,
      'mmproj-f16.gguf': 100, // bigger than one shard, smaller than the split model
    });
    const k = await generateKitfile(root, {});
    assert.equal(k.model?.path, 'llama-00001-of-00002.gguf');
    assert.equal(k.model?.format, 'gguf');
    assert.deepEqual(k.model?.parts, [
      { path: 'llama-00002-of-00002.gguf', type: 'weights' },
      { path: 'mmproj-f16.gguf', type: 'projector' },
    ]);

    const root2 = await tempDir();
    await makeTree(root2, { 'pytorch_model-00002-of-00002.bin': 5, 'pytorch_model-00001-of-00002.bin': 5, 'training_args.bin': 8 });
    const k2 = await generateKitfile(root2, {});
    assert.equal(k2.model?.path, 'pytorch_model-00001-of-00002.bin');
  });

  it('leaves tokenizer and config files without weights beside them out of the model', async () => {
    const root = await tempDir();
    await makeTree(root, { 'weights/model.safetensors': 10, 'tok/tokenizer.json': '{}', 'config.json': '{}' });
    const k = await generateKitfile(root, {});
    assert.equal(k.model?.parts, undefined);
    assert.deepEqual(k.code, [{ path: 'config.json' }, { path: 'tok' }]);
  });

  it('packs a data-only folder without a model', async () => {
    const root = await tempDir();
    await makeTree(root, { 'train.parquet': 10, 'eval.parquet': 10, 'README.md': '' });
    const k = await generateKitfile(root, {});
    assert.equal(k.model, undefined);
    assert.deepEqual(k.datasets, [
      { name: 'eval', path: 'eval.parquet' },
      { name: 'train', path: 'train.parquet' },
    ]);
  });

  it('refuses a folder with nothing to pack', async () => {
    const root = await tempDir();
    await makeTree(root, { '.hidden': 'x', 'node_modules/a.js': '' });
    await assert.rejects(generateKitfile(root, {}), (e) => e instanceof KitError && e.code === 'KITFILE_INIT_EMPTY');
  });

  it('sanitises package names', () => {
    assert.equal(sanitizePackageName('My Project!'), 'my-project');
    assert.equal(sanitizePackageName('llama_3.1-8B'), 'llama_3.1-8b');
    assert.equal(sanitizePackageName('...'), 'model');
  });
});

describe('writeKitfile', () => {
  const kitfile = { manifestVersion: '1.0.0', code: [{ path: 'src' }] };

  it('writes Kitfile atomically and leaves no temporary files', async () => {
    const dir = await tempDir();
    const written = await writeKitfile(dir, kitfile, { force: false });
    assert.equal(written, join(dir, 'Kitfile'));
    assert.deepEqual(await readdir(dir), ['Kitfile']);
    assert.deepEqual((await loadKitfile({ contextDir: dir })).kitfile, kitfile);
  });

  it('refuses to overwrite any existing Kitfile name without force', async () => {
    for (const name of ['Kitfile', 'kitfile', '.kitfile']) {
      const dir = await tempDir();
      await writeFile(join(dir, name), 'original');
      await assert.rejects(writeKitfile(dir, kitfile, { force: false }), (e) => {
        assert.ok(e instanceof KitError);
        assert.equal(e.code, 'KITFILE_EXISTS');
        assert.match(e.hint ?? '', /--force/);
        assert.equal(e.exitCode, 4);
        return true;
      });
      assert.equal(await readFile(join(dir, name), 'utf8'), 'original');
      assert.deepEqual(await readdir(dir), [name]);
    }
  });

  it('overwrites with force, keeping the existing file name', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'kitfile'), 'original');
    const written = await writeKitfile(dir, kitfile, { force: true });
    assert.equal(written, join(dir, 'kitfile'));
    assert.deepEqual(await readdir(dir), ['kitfile']);
    assert.equal(await readFile(written, 'utf8'), serializeKitfile(kitfile));
  });
});
