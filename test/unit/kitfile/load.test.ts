import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KitError } from '../../../src/errors.js';
import { KitfileError, loadKitfile } from '../../../src/kitfile/load.js';
import { MAX_KITFILE_BYTES } from '../../../src/kitfile/names.js';
import { tempDir } from '../../helpers/tmp.js';

const kitfileText = (name: string): string => `manifestVersion: 1.0.0\npackage:\n  name: ${name}\ncode:\n  - path: src\n`;

async function rejectsWith(p: Promise<unknown>, code: string): Promise<KitError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof KitError, String(err));
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

describe('loadKitfile: discovery', () => {
  it('prefers Kitfile, then kitfile, then .kitfile', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, '.kitfile'), kitfileText('dot'));
    assert.equal((await loadKitfile({ contextDir: dir })).kitfile.package?.name, 'dot');
    await writeFile(join(dir, 'kitfile'), kitfileText('lower'));
    assert.equal((await loadKitfile({ contextDir: dir })).kitfile.package?.name, 'lower');
    await writeFile(join(dir, 'Kitfile'), kitfileText('upper'));
    const loaded = await loadKitfile({ contextDir: dir });
    assert.equal(loaded.kitfile.package?.name, 'upper');
    assert.equal(loaded.file, join(dir, 'Kitfile'));
    assert.equal(loaded.text, kitfileText('upper'));
  });

  it('reports a missing Kitfile with a hint to run kit init or pass -f', async () => {
    const dir = await tempDir();
    const err = await rejectsWith(loadKitfile({ contextDir: dir }), 'KITFILE_NOT_FOUND');
    assert.match(err.hint ?? '', /kit init/);
    assert.match(err.hint ?? '', /-f/);
    assert.equal(err.exitCode, 3);
  });

  it('reports a missing context directory', async () => {
    const dir = await tempDir();
    await rejectsWith(loadKitfile({ contextDir: join(dir, 'nope') }), 'CONTEXT_NOT_FOUND');
  });

  it('shows discovered files relative to the context as given', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'Kitfile'), 'manifestVersion: 1.0.0\n');
    const rel = relative(process.cwd(), dir);
    try {
      await loadKitfile({ contextDir: rel });
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof KitfileError);
      assert.equal(err.problems[0]?.file, join(rel, 'Kitfile'));
    }
  });
});

describe('loadKitfile: -f', () => {
  it('reads the given path (relative to the working directory), ignoring the context', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'ci'));
    await writeFile(join(dir, 'Kitfile'), kitfileText('context'));
    await writeFile(join(dir, 'ci', 'release.yaml'), kitfileText('release'));
    const file = relative(process.cwd(), join(dir, 'ci', 'release.yaml'));
    const loaded = await loadKitfile({ contextDir: dir, file });
    assert.equal(loaded.kitfile.package?.name, 'release');
    assert.equal(loaded.file, file);
  });

  it('reports a missing -f file', async () => {
    const dir = await tempDir();
    const err = await rejectsWith(loadKitfile({ contextDir: dir, file: join(dir, 'missing.yaml') }), 'KITFILE_NOT_FOUND');
    assert.match(err.message, /missing\.yaml/);
  });

  it('refuses a directory', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'Kitfile'));
    const err = await rejectsWith(loadKitfile({ contextDir: dir }), 'KITFILE_NOT_REGULAR');
    assert.match(err.message, /is a directory/);
  });

  it('refuses a FIFO without blocking, given with -f or discovered', { timeout: 10_000 }, async () => {
    const dir = await tempDir();
    const fifo = join(dir, 'Kitfile');
    execFileSync('mkfifo', [fifo]);
    const viaF = await rejectsWith(loadKitfile({ contextDir: dir, file: fifo }), 'KITFILE_NOT_REGULAR');
    assert.match(viaF.message, /FIFO/);
    assert.match(viaF.hint ?? '', /-f -/);
    await rejectsWith(loadKitfile({ contextDir: dir }), 'KITFILE_NOT_REGULAR');
  });

  it('refuses a device', async () => {
    const err = await rejectsWith(loadKitfile({ contextDir: '.', file: '/dev/zero' }), 'KITFILE_NOT_REGULAR');
    assert.match(err.message, /device/);
  });

  it('follows a symlink to a regular file', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'real.yaml'), kitfileText('linked'));
    await symlink('real.yaml', join(dir, 'Kitfile'));
    assert.equal((await loadKitfile({ contextDir: dir })).kitfile.package?.name, 'linked');
  });

  it('refuses a file over 1 MiB by its size, before parsing', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'Kitfile'), Buffer.alloc(MAX_KITFILE_BYTES + 1, 0x20));
    const err = await rejectsWith(loadKitfile({ contextDir: dir }), 'KITFILE_INVALID');
    assert.match((err as KitfileError).problems[0]!.message, /1 MiB/);
  });

  it('reports validation problems with the file name', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'Kitfile'), 'manifestVersion: 1.0.0\ncode:\n  - path: ../outside\n');
    const err = (await rejectsWith(loadKitfile({ contextDir: dir }), 'KITFILE_INVALID')) as KitfileError;
    assert.equal(err.problems[0]!.file, join(dir, 'Kitfile'));
    assert.equal(err.problems[0]!.line, 3);
  });
});

describe('loadKitfile: stdin', () => {
  it('reads - from a given stream, shown as <stdin>', async () => {
    const loaded = await loadKitfile({ contextDir: '.', file: '-', stdin: Readable.from([Buffer.from(kitfileText('piped'))]) });
    assert.equal(loaded.kitfile.package?.name, 'piped');
    assert.equal(loaded.file, '<stdin>');
  });

  it('names <stdin> in problems', async () => {
    const stdin = Readable.from([Buffer.from('manifestVersion: 1.0.0\nbogus: 1\ncode: [{path: a}]\n')]);
    const err = (await rejectsWith(loadKitfile({ contextDir: '.', file: '-', stdin }), 'KITFILE_INVALID')) as KitfileError;
    assert.equal(err.message, '<stdin> has 1 problem');
    assert.equal(err.problems[0]!.file, '<stdin>');
  });

  it('stops reading stdin past 1 MiB', async () => {
    const chunk = Buffer.alloc(256 * 1024, 0x20);
    const stdin = Readable.from((function* () {
      for (let i = 0; i < 100; i++) yield chunk; // 25 MiB if read to the end
    })());
    await rejectsWith(loadKitfile({ contextDir: '.', file: '-', stdin }), 'KITFILE_INVALID');
  });

  it('reads the real process stdin in a child process', { timeout: 20_000 }, async () => {
    const loadJs = fileURLToPath(new URL('../../../src/kitfile/load.js', import.meta.url));
    const script = `
      import { loadKitfile } from ${JSON.stringify(loadJs)};
      const r = await loadKitfile({ contextDir: '.', file: '-' });
      process.stdout.write(JSON.stringify({ file: r.file, name: r.kitfile.package.name }));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let errOut = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (errOut += d.toString()));
    child.stdin.end(kitfileText('from-child'));
    const code = await new Promise<number | null>((res) => child.on('close', res));
    assert.equal(code, 0, errOut);
    assert.deepEqual(JSON.parse(out), { file: '<stdin>', name: 'from-child' });
  });
});
