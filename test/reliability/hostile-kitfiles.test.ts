/**
 * Issue 5, point 4, Kitfiles: each folder of fixtures/hostile/kitfiles/ is a project context
 * given to the real CLI (`kit pack <ctx> -t REF`). Each is refused with one clear error, a
 * non-zero exit, nothing written (the context and the folder beside it untouched), and the store
 * unchanged. Special files (a FIFO, a device, a symlink leading out) cannot live in git: the test
 * makes them in its copy of the context, as the item's Kitfile comment says.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, readdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CORPUS, expectRefusal, initStore, safeTree, workspace } from './helpers-faults/hostile.js';

const run = promisify(execFile);
const DIR = join(CORPUS, 'kitfiles');
const isRoot = process.getuid?.() === 0;

/** What each item needs made in the context copy, and the refusal it must get. */
const EXPECTED: Record<string, { message: RegExp; prepare?: (ctx: string) => Promise<void>; skip?: string | false }> = {
  'alias-bomb': { message: /too many alias expansions \(more than 100\); refusing what looks like a YAML alias bomb/ },
  huge: { message: /a Kitfile may be at most 1048576 bytes/ },
  'deep-nesting': { message: /nested more than 64 levels deep/ },
  'unknown-keys': { message: /package\.postInstall: unknown field/ },
  'path-escape': { message: /"\.\.\/outside\/sentinel" points outside the context directory/ },
  'absolute-path': { message: /"\/etc\/passwd" is absolute/ },
  'url-path': { message: /"https:\/\/evil\.example\/model\.bin" is a URL/ },
  'symlink-escape': {
    message: /models\/weights\.bin.*(outside|leads out|symlink)/,
    prepare: async (ctx) => {
      await mkdir(join(ctx, 'models'));
      await symlink('../../outside/sentinel', join(ctx, 'models', 'weights.bin'));
    },
  },
  'fifo-path': {
    message: /models\/pipe.*(FIFO|named pipe|not a regular file)/i,
    prepare: async (ctx) => {
      await mkdir(join(ctx, 'models'));
      await run('mkfifo', [join(ctx, 'models', 'pipe')]);
    },
  },
  'device-path': {
    message: /models\/zero.*(device|not a regular file)/i,
    skip: !isRoot && 'making a device node needs root',
    prepare: async (ctx) => {
      await mkdir(join(ctx, 'models'));
      await run('mknod', [join(ctx, 'models', 'zero'), 'c', '1', '5']);
    },
  },
  'kitfile-is-fifo': {
    message: /Kitfile .* is a FIFO \(named pipe\); it must be a regular file/,
    prepare: async (ctx) => {
      await run('mkfifo', [join(ctx, 'Kitfile')]);
    },
  },
};

describe('hostile Kitfiles (fixtures/hostile/kitfiles)', { concurrency: 3 }, () => {
  it('the corpus, the README index and this table list the same items', async () => {
    assert.deepEqual((await readdir(DIR)).sort(), Object.keys(EXPECTED).sort());
    const readme = await readFile(join(CORPUS, 'README.md'), 'utf8');
    for (const i of Object.keys(EXPECTED)) assert.ok(readme.includes(`kitfiles/${i}`), `README lists kitfiles/${i}`);
  });

  for (const [name, e] of Object.entries(EXPECTED)) {
    it(`${name}: refused by kit pack`, { skip: e.skip ?? false }, async () => {
      const ws = await workspace();
      const ctx = join(ws.work, 'ctx');
      await cp(join(DIR, name), ctx, { recursive: true });
      await e.prepare?.(ctx);
      await initStore(ws);
      const before = await safeTree(ctx);
      await expectRefusal(ws, ['pack', ctx, '-t', `hostile.example/kitfiles/${name}:1`], e.message, name);
      assert.deepEqual(await safeTree(ctx), before, 'the context is untouched');
    });
  }
});
