/**
 * Issue 5, point 1: interrupted CHUNKED uploads continue from the offset the registry reports
 * (GET on the upload URL -> Range), not from byte 0, within one process and across a restart:
 * the session (upload URL, offset, digest) is kept in the store under
 * <store>/uploads/<registry host>/<repository>/<digest hex>.json, so `kit push` run again after a
 * SIGKILL continues it. Real CLI, real registry (CNCF distribution 2.8); the request-side faults
 * come from ./helpers-faults/upload-fault-proxy.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { registrySkipReason, startRegistry, type RunningRegistry } from '../integration/harness/registry-server.js';
import { startFaultProxy } from '../integration/harness/fault-proxy.js';
import { KIT_BIN } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { startUploadFaultProxy, type UploadFaultProxy, type UploadFaultRule } from './helpers-faults/upload-fault-proxy.js';
import {
  MiB,
  kitEnv,
  kitOk,
  packBigArtifact,
  patchStart,
  pulledWeightDigest,
  stepsBack,
  record,
  sumIn,
  sumOut,
  tallyReport,
  type BigArtifact,
} from './helpers-faults/common.js';

const skip = await registrySkipReason();
const SUITE = 'faults-upload-resume';
const UPLOADS = /\/blobs\/uploads\//;

interface SessionRecord {
  registry: string;
  repository: string;
  digest: string;
  size: number;
  location: string;
  offset: number;
}

function sessionFile(home: string, proxyHost: string, repository: string, digest: string): string {
  return join(home, 'store', 'uploads', proxyHost.replace(':', '_'), ...repository.split('/'), `${digest.slice('sha256:'.length)}.json`);
}

async function waitFor(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('chunked uploads resume from the registry offset (real CLI, real registry)', { skip }, () => {
  let reg: RunningRegistry;
  let big: BigArtifact;
  const stoppers: Array<() => Promise<void>> = [];

  before(async () => {
    reg = await startRegistry();
    big = await packBigArtifact(128, 'upload-resume');
  });

  after(async () => {
    for (const s of stoppers.splice(0).reverse()) await s().catch(() => {});
    await reg?.stop();
    process.stdout.write(`\n${tallyReport(SUITE)}\n`);
  });

  async function uploadProxy(rules: UploadFaultRule[]): Promise<UploadFaultProxy> {
    const p = await startUploadFaultProxy({ target: reg.url, rules });
    stoppers.push(() => p.stop());
    return p;
  }

  async function pullAndVerify(host: string, repo: string): Promise<void> {
    const home = await tempDir('kit-pull-');
    const out = JSON.parse(await kitOk(['pull', `${host}/${repo}:1`, '--json'], home)) as { digest: string };
    assert.equal(out.digest, big.digest);
    assert.equal(await pulledWeightDigest(home, big), big.weightDigest);
  }

  it('across a restart: `kit push` killed with SIGKILL mid-upload continues the saved session on the next run', async () => {
    // The 5th PATCH hangs (never reaches the registry): 4 chunks of 16 MiB are in, and kit is killed.
    const up = await uploadProxy([{ kind: 'hang', nth: [5] }]);
    const repo = 'resume/killed';
    const dest = `${up.host}/${repo}:1`;
    const file = sessionFile(big.home, up.host, repo, big.weightDigest);
    const t0 = Date.now();
    const child = spawn(process.execPath, [KIT_BIN, 'push', big.ref, dest, '--progress', 'none'], {
      env: { ...process.env, KIT_HOME: big.home, CI: '1', NO_COLOR: '1', ...kitEnv(big.home, { KIT_HTTP_TIMEOUT_MS: '600000' }) },
      stdio: 'ignore',
    });
    let ended = false;
    const exited = new Promise((r) => child.once('exit', () => r((ended = true))));
    await Promise.race([up.hung, exited]);
    assert.equal(ended, false, 'kit push ended before the hang');
    const saved = JSON.parse(await readFile(file, 'utf8')) as SessionRecord;
    child.kill('SIGKILL');
    await exited;
    const firstRun = up.log.length;

    // What the store kept: the session, at the offset the registry acknowledged.
    assert.equal(saved.digest, big.weightDigest);
    assert.equal(saved.repository, repo);
    assert.equal(saved.size, big.weightSize);
    assert.equal(saved.offset, 4 * 16 * MiB);
    assert.ok(saved.location.startsWith(up.url), 'the upload URL of the session');
    assert.equal((await stat(file)).mode & 0o777, 0o600, 'the record is private (an upload URL may carry a signature)');
    assert.equal(JSON.parse(await readFile(file, 'utf8')).offset, saved.offset, 'the record survived the kill');

    const t1 = Date.now();
    await kitOk(['push', big.ref, dest, '--json'], big.home);
    const rerun = up.log.slice(firstRun);
    // The registry was asked where the session stands, and the upload continued there.
    const firstPatch = rerun.findIndex((e) => e.method === 'PATCH');
    const statusCheck = rerun.findIndex((e) => e.method === 'GET' && UPLOADS.test(e.url));
    assert.ok(statusCheck >= 0 && statusCheck < firstPatch, 'GET on the upload URL before the first PATCH');
    assert.equal(patchStart(rerun[firstPatch]!), saved.offset, 'the first PATCH of the second run starts at the registry offset');
    assert.ok(!rerun.some((e) => e.method === 'PATCH' && patchStart(e) === 0), 'nothing sent again from byte 0');
    const remaining = big.bytes - saved.offset;
    assert.ok(sumIn(rerun) <= remaining + 64 * 1024, `second run sent ${sumIn(rerun)} bytes for ${remaining} remaining`);
    await assert.rejects(readFile(file), 'the session record is removed once the blob is complete');
    assert.deepEqual((await readdir(join(big.home, 'store', 'uploads')).catch(() => [])).filter((n) => !n.startsWith('.')), [], 'no session left behind');
    record({ suite: SUITE, test: 'sigkill-restart', direction: 'push', faults: { 'hang+SIGKILL': 1 }, moved: sumIn(up.log), artifact: big.bytes, ms: Date.now() - t0 });
    process.stdout.write(`[${SUITE}] sigkill-restart: first run sent ${sumIn(up.log.slice(0, firstRun))} B, second run ${sumIn(rerun)} B (${Date.now() - t1} ms), resumed at ${saved.offset}\n`);
    await pullAndVerify(reg.host, repo);
  });

  it('within one process: a chunk the client gives up on is resumed from the offset the registry reports', async () => {
    // Five resets in a row on the third chunk: the HTTP client's own retries (5 attempts) run
    // out, and the upload asks the registry (GET) where it stands before going on.
    const rules: UploadFaultRule[] = [{ kind: 'reset-request', nth: [3, 4, 5, 6, 7], afterBytes: 1 * MiB }];
    const up = await uploadProxy(rules);
    const repo = 'resume/in-process';
    const t0 = Date.now();
    await kitOk(['push', big.ref, `${up.host}/${repo}:1`, '--json'], big.home);
    assert.equal(up.fired(0), 5);
    const afterFaults = up.log.findIndex((e) => e.method === 'PATCH' && e.fault === undefined && patchStart(e) === 2 * 16 * MiB);
    assert.ok(afterFaults > 0, 'the third chunk was sent again at its offset');
    assert.ok(up.log.slice(0, afterFaults).some((e) => e.method === 'GET' && UPLOADS.test(e.url) && e.status === 204), 'after a GET on the upload URL');
    assert.equal(stepsBack(up.log), 0, 'the offsets never went back (nothing resent from byte 0)');
    record({ suite: SUITE, test: 'in-process-resync', direction: 'push', faults: { 'reset-request': up.fired(0) }, moved: sumIn(up.log), artifact: big.bytes, ms: Date.now() - t0 });
    const down = await startFaultProxy({ target: reg.url, rules: [] });
    stoppers.push(() => down.stop());
    await pullAndVerify(down.host, repo);
    assert.ok(sumOut(down.log) <= big.bytes * 1.25);
  });

  it('a saved session the registry no longer knows, or a damaged record, costs a new session, not a failure', async () => {
    // Small chunks and threshold (KIT_UPLOAD_CHUNKED_MIN / KIT_UPLOAD_CHUNK_SIZE) keep this quick.
    const small = await packBigArtifact(12, 'stale-session');
    const env = { KIT_UPLOAD_CHUNKED_MIN: String(4 * MiB), KIT_UPLOAD_CHUNK_SIZE: String(1 * MiB) };
    const up = await uploadProxy([{ kind: 'hang', nth: [4] }]);
    const repo = 'resume/stale';
    const dest = `${up.host}/${repo}:1`;
    const file = sessionFile(small.home, up.host, repo, small.weightDigest);
    const child = spawn(process.execPath, [KIT_BIN, 'push', small.ref, dest, '--progress', 'none'], {
      env: { ...process.env, KIT_HOME: small.home, CI: '1', ...kitEnv(small.home, { ...env, KIT_HTTP_TIMEOUT_MS: '600000' }) },
      stdio: 'ignore',
    });
    const exited = new Promise((r) => child.once('exit', r));
    await up.hung;
    child.kill('SIGKILL');
    await exited;
    const saved = JSON.parse(await readFile(file, 'utf8')) as SessionRecord;
    assert.equal(saved.offset, 3 * MiB);

    // The registry forgets the session (as upload purging would): the next run starts over.
    const del = await fetch(saved.location.replace(up.url, reg.url), { method: 'DELETE' });
    assert.ok(del.status === 204 || del.status === 202, `DELETE upload: ${del.status}`);
    const before = up.log.length;
    await kitOk(['push', small.ref, dest, '--json'], small.home, env);
    const rerun = up.log.slice(before);
    assert.equal(rerun.find((e) => e.method === 'GET' && UPLOADS.test(e.url))?.status, 404, 'the registry said the session is gone');
    assert.equal(patchStart(rerun.find((e) => e.method === 'PATCH')!), 0, 'so the upload started again from byte 0');
    await assert.rejects(readFile(file));

    // A damaged record, or one naming a non-http upload URL, is ignored.
    for (const [i, text] of [
      '{"version":1,"location":"file:///etc/passwd","offset":-5',
      JSON.stringify({ version: 1, registry: up.host, repository: 'resume/damaged-1', digest: small.weightDigest, size: small.weightSize, location: 'file:///etc/passwd', offset: 0, createdAt: '', updatedAt: '' }),
    ].entries()) {
      const repo2 = `resume/damaged-${i}`;
      const file2 = sessionFile(small.home, up.host, repo2, small.weightDigest);
      await mkdir(join(file2, '..'), { recursive: true });
      await writeFile(file2, text);
      await kitOk(['push', small.ref, `${up.host}/${repo2}:1`, '--json'], small.home, env);
      await assert.rejects(readFile(file2));
    }
    const repo2 = 'resume/damaged-1';
    const home = await tempDir('kit-pull-');
    await kitOk(['pull', `${reg.host}/${repo2}:1`], home);
    assert.equal(await pulledWeightDigest(home, small), small.weightDigest);
  });
});
