/**
 * The real CLI against the real registry (CNCF distribution, docker-registry), plain HTTP and
 * anonymous: push, re-push, pull, unpack from the registry, remote list/inspect/info/remove/tag,
 * resume of a dropped and of a killed download, and interop with skopeo.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { EXAMPLE, KIT_BIN, runKit } from '../helpers/cli.js';
import { diffTrees, exampleSkip, snapshotTree } from '../helpers/tree.js';
import { tempDir } from '../helpers/tmp.js';
import { registrySkipReason, startRegistry, type RunningRegistry } from './harness/registry-server.js';
import { startFaultProxy } from './harness/fault-proxy.js';

const skip = await registrySkipReason();
const run = promisify(execFile);

async function ok(args: string[], home: string, env: Record<string, string> = {}): Promise<string> {
  const r = await runKit(args, { home, env: { KIT_CONFIG_HOME: join(home, 'config'), DOCKER_CONFIG: join(home, 'docker'), ...env } });
  assert.equal(r.code, 0, `kit ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

async function bigProject(sizeMiB: number): Promise<string> {
  const dir = await tempDir();
  await mkdir(join(dir, 'models'));
  await writeFile(join(dir, 'models', 'big.safetensors'), randomBytes(sizeMiB * 1024 * 1024));
  await writeFile(join(dir, 'README.md'), '# big\n');
  await writeFile(join(dir, 'Kitfile'), 'manifestVersion: 1.0.0\npackage:\n  name: big\nmodel:\n  path: models/big.safetensors\ndocs:\n  - path: README.md\n');
  return dir;
}

describe('CLI against a plain-HTTP registry', { skip }, () => {
  let reg: RunningRegistry;
  before(async () => {
    reg = await startRegistry();
  });
  after(async () => reg?.stop());

  it('pushes, skips everything on re-push, pulls and unpacks the same tree', async () => {
    const home = await tempDir();
    const ref = `${reg.host}/team/sentiment:1.0`;
    await ok(['pack', EXAMPLE, '-t', ref], home);
    const first = JSON.parse(await ok(['push', ref, '--json'], home)) as { copied: number; skipped: number; digest: string };
    assert.ok(first.copied >= 10);
    const again = JSON.parse(await ok(['push', ref, '--json'], home)) as { copied: number; skipped: number; bytes: number };
    assert.equal(again.copied, 0);
    assert.equal(again.bytes, 0);
    assert.equal(again.skipped, first.copied);

    const home2 = await tempDir();
    const pulled = JSON.parse(await ok(['pull', ref, '--json'], home2)) as { digest: string };
    assert.equal(pulled.digest, first.digest);
    const out = join(await tempDir(), 'out');
    await ok(['unpack', ref, '-d', out, '--local'], home2);
    assert.deepEqual(diffTrees(await snapshotTree(EXAMPLE, exampleSkip), await snapshotTree(out)), []);

    // Pull by digest verifies the manifest against it.
    const home3 = await tempDir();
    await ok(['pull', `${reg.host}/team/sentiment@${first.digest}`], home3);
  });

  it('is what skopeo reads, and an artifact skopeo copied back is pulled and unpacked unchanged', async () => {
    const home = await tempDir();
    const ref = `${reg.host}/interop/model:1`;
    await ok(['pack', EXAMPLE, '-t', ref], home);
    await ok(['push', ref], home);
    const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
    const manifest = JSON.parse(stdout) as { artifactType: string; layers: unknown[] };
    assert.equal(manifest.artifactType, 'application/vnd.cncf.model.manifest.v1+json');
    const layout = join(await tempDir(), 'layout');
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:copied`]);
    await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:copied`, `docker://${reg.host}/interop/copied:1`]);
    const home2 = await tempDir();
    await ok(['pull', `${reg.host}/interop/copied:1`], home2);
    const out = join(await tempDir(), 'out');
    await ok(['unpack', `${reg.host}/interop/copied:1`, '-d', out], home2);
    assert.deepEqual(diffTrees(await snapshotTree(EXAMPLE, exampleSkip), await snapshotTree(out)), []);
  });

  it('lists, inspects, reads the Kitfile of, tags across repositories and deletes remote artifacts', async () => {
    const home = await tempDir();
    const ref = `${reg.host}/remote/ops:1`;
    await ok(['pack', EXAMPLE, '-t', ref], home);
    await ok(['push', ref], home);
    const tags = JSON.parse(await ok(['list', '--remote', `${reg.host}/remote/ops`, '--json'], home)) as Array<{ tag: string; digest: string }>;
    assert.deepEqual(tags.map((t) => t.tag), ['1']);
    const inspect = JSON.parse(await ok(['inspect', '--remote', ref], home)) as { digest: string; config: { descriptor: { name: string } } };
    assert.equal(inspect.digest, tags[0]!.digest);
    assert.equal(inspect.config.descriptor.name, 'tiny-sentiment');
    assert.equal((await ok(['info', '--remote', ref, '--filter', '.package.name'], home)).trim(), 'tiny-sentiment');

    const tagged = JSON.parse(await ok(['tag', '--remote', ref, `${reg.host}/other/ops:2`, '--json'], home)) as { mounted: number; copied: number };
    assert.ok(tagged.mounted >= 10, 'blobs mounted across repositories');
    assert.equal(tagged.copied, 0);

    const d = JSON.parse(await ok(['diff', `local://${ref}`, `remote://${reg.host}/other/ops:2`, '--json'], home)) as { identical: boolean; b: { where: string }; transferBytesForB: number };
    assert.equal(d.identical, true);
    assert.equal(d.b.where, 'remote');
    assert.equal(d.transferBytesForB, 0);

    await ok(['remove', '--remote', `${reg.host}/other/ops:2`], home);
    const gone = await runKit(['inspect', '--remote', `${reg.host}/other/ops:2`], { home });
    assert.equal(gone.code, 3);
    assert.match(gone.stderr, /other\/ops/);
  });

  it('unpacks straight from the registry, storing nothing and fetching only the selected layers', async () => {
    const home = await tempDir();
    const ref = `${reg.host}/direct/model:1`;
    await ok(['pack', EXAMPLE, '-t', ref], home);
    await ok(['push', ref], home);
    const proxy = await startFaultProxy({ target: reg.url, rules: [] });
    try {
      const fresh = await tempDir();
      const out = join(await tempDir(), 'out');
      const stdout = await ok(['unpack', `${proxy.host}/direct/model:1`, '-d', out, '--filter', 'datasets:training'], fresh);
      assert.match(stdout, /from the registry/);
      assert.deepEqual([...(await snapshotTree(out)).keys()].sort(), ['data', 'data/train.csv']);
      const blobGets = proxy.log.filter((l) => l.method === 'GET' && /\/blobs\/sha256:/.test(l.url));
      assert.equal(blobGets.length, 2, 'the config and the one selected layer');
      const storeBlobs = await readdir(join(fresh, 'store', 'blobs', 'sha256')).catch(() => []);
      assert.deepEqual(storeBlobs, []);
    } finally {
      await proxy.stop();
    }
  });

  it('resumes a download dropped mid-body with a Range request', async () => {
    const home = await tempDir();
    const dir = await bigProject(12);
    const ref = `${reg.host}/resume/model:1`;
    await ok(['pack', dir, '-t', ref], home);
    await ok(['push', ref], home);
    const proxy = await startFaultProxy({ target: reg.url, rules: [{ kind: 'reset-mid-body', afterBytes: 5 * 1024 * 1024, match: /\/blobs\/sha256:/, times: 1 }] });
    try {
      const home2 = await tempDir();
      await ok(['pull', `${proxy.host}/resume/model:1`], home2);
      const ranged = proxy.log.filter((l) => typeof l.headers.range === 'string');
      assert.equal(ranged.length, 1, 'one resumed request');
      assert.match(String(ranged[0]!.headers.range), /^bytes=[1-9]\d*-$/);
      const received = proxy.log.filter((l) => /\/blobs\/sha256:/.test(l.url)).reduce((n, l) => n + l.bytesOut, 0);
      assert.ok(received < 12 * 1024 * 1024 * 1.1, `received ${received} bytes for a 12 MiB blob`);
      const out = join(await tempDir(), 'out');
      await ok(['unpack', `${proxy.host}/resume/model:1`, '-d', out], home2);
      assert.equal((await stat(join(out, 'models', 'big.safetensors'))).size, 12 * 1024 * 1024);
    } finally {
      await proxy.stop();
    }
  });

  it('resumes after the pulling process was killed', async () => {
    const home = await tempDir();
    const dir = await bigProject(16);
    const ref = `${reg.host}/killed/model:1`;
    await ok(['pack', dir, '-t', ref], home);
    await ok(['push', ref], home);
    // The proxy stalls the big blob after 6 MiB: the pull is killed while it waits.
    const proxy = await startFaultProxy({ target: reg.url, rules: [{ kind: 'stall', ms: 60_000, afterBytes: 6 * 1024 * 1024, match: /\/blobs\/sha256:/, times: 1 }] });
    try {
      const home2 = await tempDir();
      const child = spawn(process.execPath, [KIT_BIN, 'pull', `${proxy.host}/killed/model:1`, '--concurrency', '1'], {
        env: { ...process.env, KIT_HOME: home2, KIT_CONFIG_HOME: join(home2, 'config'), CI: '1' },
        stdio: 'ignore',
      });
      const ingest = join(home2, 'store', 'ingest');
      const deadline = Date.now() + 20_000;
      let partial = 0;
      while (Date.now() < deadline) {
        const names = (await readdir(ingest).catch(() => [])).filter((n) => n.endsWith('.partial'));
        const sizes = await Promise.all(names.map((n) => stat(join(ingest, n)).then((s) => s.size, () => 0)));
        partial = Math.max(0, ...sizes);
        if (partial >= 6 * 1024 * 1024) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      assert.ok(partial >= 6 * 1024 * 1024, `partial download kept (${partial} bytes)`);

      const before = proxy.log.length;
      await ok(['pull', `${proxy.host}/killed/model:1`], home2);
      const ranged = proxy.log.slice(before).filter((l) => typeof l.headers.range === 'string');
      assert.equal(ranged.length, 1);
      assert.match(String(ranged[0]!.headers.range), /^bytes=\d+-$/);
      assert.ok(Number(/bytes=(\d+)-/.exec(String(ranged[0]!.headers.range))![1]) >= 6 * 1024 * 1024);
      const out = join(await tempDir(), 'out');
      await ok(['unpack', `${proxy.host}/killed/model:1`, '-d', out], home2);
      assert.equal((await stat(join(out, 'models', 'big.safetensors'))).size, 16 * 1024 * 1024);
    } finally {
      await proxy.stop();
    }
  });

  it('retries through a burst of 503s and 429s', async () => {
    const home = await tempDir();
    const ref = `${reg.host}/burst/model:1`;
    await ok(['pack', EXAMPLE, '-t', ref], home);
    const proxy = await startFaultProxy({
      target: reg.url,
      rules: [
        { kind: 'status-burst', status: 503, count: 3, match: /\/blobs\// },
        { kind: 'status-burst', status: 429, count: 2, retryAfter: '0', match: /\/manifests\// },
      ],
    });
    try {
      await ok(['push', ref, `${proxy.host}/burst/model:1`], home);
      assert.equal(proxy.fired(0), 3);
      assert.equal(proxy.fired(1), 2);
      await ok(['pull', `${proxy.host}/burst/model:1`], await tempDir());
    } finally {
      await proxy.stop();
    }
  });

  it('pack --push sends the artifact straight to the registry, storing nothing locally', async () => {
    const home = await tempDir();
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    const ref = `${reg.host}/packpush/model:1`;
    const r = JSON.parse(await ok(['pack', EXAMPLE, '-t', `${ref},${reg.host}/packpush/model:latest`, '--push', '--json'], home, env)) as {
      digest: string;
      pushed: Array<{ copied: number; skipped: number }>;
    };
    assert.equal(r.pushed.length, 2);
    assert.ok(r.pushed[0]!.copied >= 10);
    assert.equal(r.pushed[1]!.copied, 0, 'the second tag needs no upload');
    assert.deepEqual(JSON.parse(await ok(['list', '--json'], home)), []);
    assert.deepEqual(await readdir(join(home, 'store', 'blobs', 'sha256')).catch(() => []), []);
    // The same digest as a local pack of the same inputs.
    const local = JSON.parse(await ok(['pack', EXAMPLE, '-t', 'x.io/a/b:1', '--json'], await tempDir(), env)) as { digest: string };
    assert.equal(r.digest, local.digest);
    const again = JSON.parse(await ok(['pack', EXAMPLE, '-t', ref, '--push', '--json'], home, env)) as { pushed: Array<{ copied: number }> };
    assert.equal(again.pushed[0]!.copied, 0);
    const home2 = await tempDir();
    const out = join(await tempDir(), 'out');
    await ok(['unpack', ref, '-d', out], home2);
    assert.deepEqual(diffTrees(await snapshotTree(EXAMPLE, exampleSkip), await snapshotTree(out)), []);
  });

  it('reports a missing remote tag with exit code 3', async () => {
    const r = await runKit(['pull', `${reg.host}/none/such:1`], { home: await tempDir() });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /none\/such/);
  });
});
