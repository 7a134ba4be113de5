import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { KitError } from '../../../src/errors.js';
import { createKitIgnore, loadKitignore, type KitIgnore } from '../../../src/kitfile/ignore.js';
import { tempDir } from '../../helpers/tmp.js';

/** Paths from `paths` that `ig` ignores. */
function ignored(ig: KitIgnore, paths: string[]): string[] {
  return paths.filter((p) => ig.ignores(p));
}

describe('createKitIgnore', () => {
  it('ignores a directory and everything in it, but not a sibling with a longer name', () => {
    const ig = createKitIgnore(['data/']);
    assert.deepEqual(ignored(ig, ['data', 'data/a.csv', 'data/x/y.csv', 'data2', 'data2/a.csv', 'mydata/a.csv']), [
      'data',
      'data/a.csv',
      'data/x/y.csv',
    ]);
  });

  it('re-includes with ! after a ** exclusion', () => {
    const ig = createKitIgnore(['data/**', '!data/keep.csv']);
    assert.equal(ig.ignores('data/drop.csv'), true);
    assert.equal(ig.ignores('data/sub/drop.csv'), true);
    assert.equal(ig.ignores('data/keep.csv'), false);
  });

  it('lets the last matching pattern win', () => {
    const ig = createKitIgnore(['*.log', '!important.log', 'important.log']);
    assert.equal(ig.ignores('important.log'), true);
    assert.equal(ig.ignores('a.log'), true);
  });

  it('matches ** across directories and * within one', () => {
    const ig = createKitIgnore(['**/*.tmp', 'checkpoints/*/optimizer.pt']);
    assert.deepEqual(
      ignored(ig, ['a.tmp', 'x/y/z.tmp', 'checkpoints/step1/optimizer.pt', 'checkpoints/a/b/optimizer.pt', 'checkpoints/step1/model.pt']),
      ['a.tmp', 'x/y/z.tmp', 'checkpoints/step1/optimizer.pt'],
    );
  });

  it('anchors patterns at the root: * does not cross directories, a leading / is dropped', () => {
    const ig = createKitIgnore(['*.csv', '/build']);
    assert.equal(ig.ignores('top.csv'), true);
    assert.equal(ig.ignores('data/nested.csv'), false); // Docker semantics, unlike .gitignore
    assert.equal(ig.ignores('build/out.bin'), true);
    assert.equal(ig.ignores('src/build/out.bin'), false);
  });

  it('skips comments and blank lines', () => {
    const ig = createKitIgnore(['# secret.txt', '', '   ', 'tmp']);
    assert.equal(ig.ignores('# secret.txt'), false);
    assert.equal(ig.ignores('secret.txt'), false);
    assert.equal(ig.ignores('tmp/x'), true);
  });

  it('is case-sensitive and treats regex characters literally', () => {
    const ig = createKitIgnore(['Model.bin', 'a+b.txt', 'x(1).csv']);
    assert.equal(ig.ignores('Model.bin'), true);
    assert.equal(ig.ignores('model.bin'), false);
    assert.equal(ig.ignores('a+b.txt'), true);
    assert.equal(ig.ignores('aab.txt'), false);
    assert.equal(ig.ignores('x(1).csv'), true);
    assert.equal(ig.ignores('x1.csv'), false);
  });

  it('accepts ./ prefixes and trailing slashes in queried paths; never ignores the root', () => {
    const ig = createKitIgnore(['data']);
    assert.equal(ig.ignores('./data/a.csv'), true);
    assert.equal(ig.ignores('data/'), true);
    assert.equal(ig.ignores('.'), false);
    assert.equal(ig.ignores(''), false);
  });

  it('always ignores the Kitfile names and .kitignore at the root only', () => {
    const ig = createKitIgnore(['!Kitfile', '!.kitignore']);
    assert.deepEqual(ignored(ig, ['Kitfile', 'kitfile', '.kitfile', '.kitignore', './Kitfile', 'sub/Kitfile', 'sub/.kitignore', 'Kitfile.bak']), [
      'Kitfile',
      'kitfile',
      '.kitfile',
      '.kitignore',
      './Kitfile',
    ]);
  });
});

describe('loadKitignore', () => {
  it('reads .kitignore from the context (CRLF, BOM)', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, '.kitignore'), '\uFEFFcheckpoints/\r\n# comment\r\n*.tmp\r\n!keep.tmp\r\n');
    const ig = await loadKitignore(dir);
    assert.deepEqual(ignored(ig, ['checkpoints/a.pt', 'x.tmp', 'keep.tmp', 'model.gguf', 'Kitfile']), ['checkpoints/a.pt', 'x.tmp', 'Kitfile']);
  });

  it('works without a .kitignore', async () => {
    const dir = await tempDir();
    const ig = await loadKitignore(dir);
    assert.equal(ig.ignores('anything.bin'), false);
    assert.equal(ig.ignores('.kitignore'), true);
  });

  it('refuses a .kitignore that is a directory or a FIFO', { timeout: 10_000 }, async () => {
    const dir = await tempDir();
    await mkdir(join(dir, '.kitignore'));
    await assert.rejects(loadKitignore(dir), (e) => e instanceof KitError && e.code === 'KITFILE_NOT_REGULAR');
    const dir2 = await tempDir();
    execFileSync('mkfifo', [join(dir2, '.kitignore')]);
    await assert.rejects(loadKitignore(dir2), (e) => e instanceof KitError && /FIFO/.test(e.message));
  });
});
