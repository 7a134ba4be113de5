import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile, chmod } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { isWithin, planLayers } from '../../../src/artifact/plan.js';
import { createKitIgnore } from '../../../src/kitfile/ignore.js';
import type { Kitfile } from '../../../src/kitfile/schema.js';
import { KitError } from '../../../src/errors.js';
import { tempDir } from '../../helpers/tmp.js';

const noIgnore = createKitIgnore([]);

async function project(files: Record<string, string>): Promise<string> {
  const dir = await tempDir();
  for (const [p, body] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), body);
  }
  return dir;
}

function plan(dir: string, kitfile: Kitfile, extra: Partial<Parameters<typeof planLayers>[0]> = {}) {
  return planLayers({ contextDir: dir, kitfile, ignore: noIgnore, format: 'modelpack', layerFormat: 'raw', ...extra });
}

describe('isWithin', () => {
  it('compares by path component', () => {
    assert.equal(isWithin('data/x', 'data'), true);
    assert.equal(isWithin('data', 'data'), true);
    assert.equal(isWithin('data2/x', 'data'), false);
    assert.equal(isWithin('anything', '.'), true);
  });
});

describe('planLayers', () => {
  it('splits a model folder into one layer per file, weights and configs told apart', async () => {
    const dir = await project({ 'm/model-00001-of-00002.safetensors': 'a', 'm/model-00002-of-00002.safetensors': 'b', 'm/config.json': '{}' });
    const layers = await plan(dir, { manifestVersion: '1.0.0', model: { path: 'm' } });
    assert.deepEqual(
      layers.map((l) => [l.path, l.role, l.encoding]),
      [
        ['m/config.json', 'weight.config', 'raw'],
        ['m/model-00001-of-00002.safetensors', 'weight', 'raw'],
        ['m/model-00002-of-00002.safetensors', 'weight', 'raw'],
      ],
    );
  });

  it('keeps a KitOps model folder as one tar layer, and single files as tar in KitOps', async () => {
    const dir = await project({ 'm/a.bin': 'a', 'm/b.bin': 'b', 'r.md': 'r' });
    const layers = await plan(dir, { manifestVersion: '1.0.0', model: { path: 'm' }, docs: [{ path: 'r.md' }] }, { format: 'kitops' });
    assert.deepEqual(layers.map((l) => [l.path, l.encoding, l.entries.length]), [['m', 'tar', 3], ['r.md', 'tar', 1]]);
  });

  it('leaves nested entries out of enclosing ones and honours .kitignore with exceptions', async () => {
    const dir = await project({ 'data/a.csv': 'a', 'data/sub/b.csv': 'b', 'data/tmp/x.log': 'x', 'data/tmp/keep.csv': 'k', 'data2/c.csv': 'c' });
    const ignore = createKitIgnore(['data/tmp', '!data/tmp/keep.csv']);
    const layers = await plan(dir, { manifestVersion: '1.0.0', datasets: [{ path: 'data' }, { path: 'data/sub' }, { path: 'data2' }] }, { ignore });
    assert.deepEqual(layers[0]!.entries.map((e) => e.path), ['data', 'data/a.csv', 'data/tmp', 'data/tmp/keep.csv']);
    assert.deepEqual(layers[1]!.entries.map((e) => e.path), ['data/sub', 'data/sub/b.csv']);
    assert.deepEqual(layers[2]!.entries.map((e) => e.path), ['data2', 'data2/c.csv']);
  });

  it('records the executable bit', async () => {
    const dir = await project({ 'src/run.sh': '#!/bin/sh' });
    await chmod(join(dir, 'src', 'run.sh'), 0o700);
    const [layer] = await plan(dir, { manifestVersion: '1.0.0', code: [{ path: 'src' }] });
    assert.equal(layer!.entries.find((e) => e.path === 'src/run.sh')!.executable, true);
  });

  const refusals: Array<[string, (dir: string) => Promise<void>, string]> = [
    ['a missing path', async () => undefined, 'PATH_NOT_FOUND'],
    ['a symlink loop', async (dir) => { await mkdir(join(dir, 'data')); await symlink('..', join(dir, 'data', 'loop')); }, 'SYMLINK_LOOP'],
    ['a broken symlink', async (dir) => { await mkdir(join(dir, 'data')); await symlink('nowhere', join(dir, 'data', 'x')); }, 'SYMLINK_BROKEN'],
    ['a FIFO', async (dir) => { await mkdir(join(dir, 'data')); execFileSync('mkfifo', [join(dir, 'data', 'pipe')]); }, 'SPECIAL_FILE'],
    ['a symlink leaving the context', async (dir) => { await mkdir(join(dir, 'data')); await symlink('/etc', join(dir, 'data', 'etc')); }, 'SYMLINK_ESCAPES'],
  ];
  for (const [name, setup, code] of refusals) {
    it(`refuses ${name} (${code})`, async () => {
      const dir = await tempDir();
      await setup(dir);
      await assert.rejects(plan(dir, { manifestVersion: '1.0.0', datasets: [{ path: 'data' }] }), (e: unknown) => e instanceof KitError && e.code === code);
    });
  }
});
