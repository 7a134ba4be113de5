import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ownerTag, readLockOwner, tryPidLock } from '../../../src/store/pid-lock.js';
import { tempDir } from '../../helpers/tmp.js';

const WORKER = fileURLToPath(new URL('./pid-lock-worker.js', import.meta.url));

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

describe('pid lock', () => {
  it('holds the owner from the moment it exists, and is released', async () => {
    const path = join(await tempDir('kit-pidlock-'), 'x.lock');
    const release = await tryPidLock(path);
    assert.ok(release);
    assert.equal(await readFile(path, 'utf8'), `${process.pid} ${ownerTag()}\n`);
    assert.deepEqual(await readLockOwner(path), { pid: process.pid, owner: 'active' });
    assert.equal(await tryPidLock(path), undefined, 'taken twice');
    await release();
    assert.deepEqual(await readdir(join(path, '..')), []);
  });

  it("takes over a dead owner's lock and garbage, never another namespace's", async () => {
    const dir = await tempDir('kit-pidlock-');
    const dead = join(dir, 'dead.lock');
    await writeFile(dead, `${await deadPid()} ${ownerTag()}\n`);
    assert.ok(await tryPidLock(dead));
    const legacy = join(dir, 'legacy.lock');
    await writeFile(legacy, String(await deadPid()));
    assert.ok(await tryPidLock(legacy));
    const garbage = join(dir, 'garbage.lock');
    await writeFile(garbage, 'not a pid');
    assert.ok(await tryPidLock(garbage));
    // A pid of another pid namespace (a container sharing the store) cannot be judged: kept.
    const foreign = join(dir, 'foreign.lock');
    await writeFile(foreign, `${await deadPid()} zzzzzz\n`);
    assert.equal(await tryPidLock(foreign), undefined);
    assert.equal((await readLockOwner(foreign)).owner, 'unknown');
  });

  it('a dead lock raced by 8 processes at the same moment goes to exactly one, 20 times over', { timeout: 120_000 }, async () => {
    const dir = await tempDir('kit-pidlock-race-');
    for (let round = 0; round < 20; round++) {
      const path = join(dir, `r${round}.lock`);
      await writeFile(path, `${await deadPid()} ${ownerTag()}\n`);
      const startAt = Date.now() + 700;
      const children = Array.from({ length: 8 }, () => spawn(process.execPath, [WORKER, path, String(startAt)], { stdio: ['ignore', 'pipe', 'inherit'] }));
      const answers = await Promise.all(
        children.map(
          (c) =>
            new Promise<string>((resolve) => {
              let out = '';
              c.stdout!.on('data', (d: Buffer) => {
                out += d.toString();
                if (out.includes('\n')) resolve(out.trim());
              });
              c.once('exit', () => resolve(out.trim()));
            }),
        ),
      );
      const owner = await readLockOwner(path);
      for (const c of children) c.kill('SIGKILL');
      await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
      const winners = children.filter((_, i) => answers[i] === 'got');
      assert.equal(winners.length, 1, `round ${round}: ${answers.join(' ')}`);
      assert.equal(owner.pid, winners[0]!.pid);
    }
    // Nothing but the locks themselves is left: no temp or moved-aside file.
    assert.deepEqual((await readdir(dir)).filter((n) => !/^r\d+\.lock$/.test(n)), []);
  });
});
