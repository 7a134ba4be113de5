/**
 * Issue 5, point 1: a 256 MiB artifact pushed and pulled by the real CLI through faults, against
 * a real registry (CNCF distribution 2.8 on 127.0.0.1). For each kind of fault the transfer
 * completes, the content is verified (the pulled weight layer is re-hashed), and the bytes the
 * client sent (push) or received (pull), as the proxy in front of the registry counted them, stay
 * within 1.25x of the artifact's size: downloads resume with Range, chunked uploads continue from
 * the offset the registry reports.
 *
 * Proxies: test/integration/harness/fault-proxy.ts for response-side faults, bursts and stalls;
 * ./helpers-faults/upload-fault-proxy.ts for request-side faults on uploads (a reset or closed
 * connection mid-chunk, a dropped upload session), which the fault proxy cannot make.
 * The CLI runs with KIT_HTTP_TIMEOUT_MS=2000, so a stalled exchange is given up after 2 s.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { registrySkipReason, startRegistry, type RunningRegistry } from '../integration/harness/registry-server.js';
import { startFaultProxy, type FaultProxy, type FaultRule } from '../integration/harness/fault-proxy.js';
import { tempDir } from '../helpers/tmp.js';
import { startUploadFaultProxy, type UploadFaultProxy, type UploadFaultRule } from './helpers-faults/upload-fault-proxy.js';
import {
  MiB,
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
  type LogEntryLike,
} from './helpers-faults/common.js';

const skip = await registrySkipReason();
const SUITE = 'faults-push-pull';
const BLOBS = /\/blobs\/sha256:/;
const UPLOADS = /\/blobs\/uploads\//;

describe('256 MiB push and pull under faults (real CLI, real registry)', { skip }, () => {
  let reg: RunningRegistry;
  let big: BigArtifact;
  const stoppers: Array<() => Promise<void>> = [];

  before(async () => {
    reg = await startRegistry();
    big = await packBigArtifact(256);
  });

  after(async () => {
    for (const s of stoppers.splice(0).reverse()) await s().catch(() => {});
    await reg?.stop();
    process.stdout.write(`\n${tallyReport(SUITE)}\n`);
  });

  async function faultProxy(rules: FaultRule[], seed?: number): Promise<FaultProxy> {
    const p = await startFaultProxy({ target: reg.url, rules, ...(seed !== undefined ? { seed } : {}) });
    stoppers.push(() => p.stop());
    return p;
  }

  async function uploadProxy(rules: UploadFaultRule[]): Promise<UploadFaultProxy> {
    const p = await startUploadFaultProxy({ target: reg.url, rules });
    stoppers.push(() => p.stop());
    return p;
  }

  function firedPerKind(rules: Array<{ kind: string }>, fired: (i: number) => number): Record<string, number> {
    const out: Record<string, number> = {};
    rules.forEach((r, i) => {
      const n = fired(i);
      if (n > 0) out[r.kind] = (out[r.kind] ?? 0) + n;
    });
    return out;
  }

  /** kit push through `host`; returns the push's log slice. */
  async function push(test: string, host: string, repo: string, log: LogEntryLike[], faults: () => Record<string, number>, env: Record<string, string> = {}): Promise<LogEntryLike[]> {
    const from = log.length;
    const t0 = Date.now();
    const out = JSON.parse(await kitOk(['push', big.ref, `${host}/${repo}:1`, '--json'], big.home, env)) as { digest: string; copied: number };
    assert.equal(out.digest, big.digest);
    const mine = log.slice(from);
    record({ suite: SUITE, test, direction: 'push', faults: faults(), moved: sumIn(mine), artifact: big.bytes, ms: Date.now() - t0 });
    return mine;
  }

  /** kit pull through `host` into a fresh store; the weight layer is re-hashed. */
  async function pull(test: string, host: string, repo: string, log: LogEntryLike[], faults: () => Record<string, number>): Promise<LogEntryLike[]> {
    const from = log.length;
    const home = await tempDir('kit-pull-');
    const t0 = Date.now();
    const out = JSON.parse(await kitOk(['pull', `${host}/${repo}:1`, '--json'], home)) as { digest: string };
    const ms = Date.now() - t0;
    assert.equal(out.digest, big.digest);
    assert.equal(await pulledWeightDigest(home, big), big.weightDigest, 'the pulled weights hash to their digest');
    const mine = log.slice(from);
    record({ suite: SUITE, test, direction: 'pull', faults: faults(), moved: sumOut(mine), artifact: big.bytes, ms });
    return mine;
  }

  /** The weight blob's GETs: every one after the first must continue with a Range. */
  function assertRangeResumes(log: LogEntryLike[], atLeast: number): void {
    const gets = log.filter((e) => e.method === 'GET' && e.url.includes(big.weightDigest));
    const ranged = gets.filter((e) => typeof e.headers.range === 'string');
    assert.ok(ranged.length >= atLeast, `expected >= ${atLeast} ranged GETs of the weights, got ${ranged.length}`);
    for (const e of ranged) assert.match(String(e.headers.range), /^bytes=[1-9]\d*-$/, 'resumed past byte 0');
  }

  it('connection reset mid-body: uploads resend only the broken chunk, downloads resume with Range', async () => {
    const upRules: UploadFaultRule[] = [{ kind: 'reset-request', nth: [2, 6, 11], afterBytes: 8 * MiB }];
    const up = await uploadProxy(upRules);
    const pushed = await push('reset', up.host, 'faults/reset', up.log, () => firedPerKind(upRules, up.fired));
    assert.equal(up.fired(0), 3);
    // Every chunk after a reset starts where the registry stood: the offsets never go back.
    assert.equal(stepsBack(pushed), 0, 'no chunk sent from an earlier offset than the one before it');

    const rules: FaultRule[] = [{ kind: 'reset-mid-body', afterBytes: 48 * MiB, match: BLOBS, times: 3 }];
    const down = await faultProxy(rules);
    const pulled = await pull('reset', down.host, 'faults/reset', down.log, () => firedPerKind(rules, down.fired));
    assert.equal(down.fired(0), 3);
    assertRangeResumes(pulled, 3);
  });

  it('stall: a hung exchange is given up after the timeout and tried again', async () => {
    const upRules: FaultRule[] = [
      { kind: 'stall', ms: 600_000, method: 'PATCH', match: UPLOADS, times: 1 },
      { kind: 'stall', ms: 600_000, method: 'HEAD', match: BLOBS, times: 1 },
    ];
    const up = await faultProxy(upRules);
    await push('stall', up.host, 'faults/stall', up.log, () => firedPerKind(upRules, up.fired));
    assert.equal(up.fired(0), 1);
    assert.equal(up.fired(1), 1);

    const rules: FaultRule[] = [
      // The body stops after 100 MiB: the idle timer, not a total deadline, ends the wait.
      { kind: 'stall', ms: 600_000, afterBytes: 100 * MiB, match: BLOBS, times: 1 },
      { kind: 'stall', ms: 600_000, method: 'HEAD', match: /\/manifests\//, times: 1 },
    ];
    const down = await faultProxy(rules);
    const pulled = await pull('stall', down.host, 'faults/stall', down.log, () => firedPerKind(rules, down.fired));
    assert.equal(down.fired(0), 1);
    assert.equal(down.fired(1), 1);
    assertRangeResumes(pulled, 1);
  });

  it('truncated body: a cut request is resent from the registry offset; a short response (FIN, or a clean short chunked body) resumes', async () => {
    const upRules: UploadFaultRule[] = [{ kind: 'close-request', nth: [3, 7], afterBytes: 4 * MiB }];
    const up = await uploadProxy(upRules);
    await push('truncate', up.host, 'faults/truncate', up.log, () => firedPerKind(upRules, up.fired));
    assert.equal(up.fired(0), 2);

    const rules: FaultRule[] = [
      { kind: 'truncate-body', afterBytes: 80 * MiB, match: BLOBS, times: 1 },
      { kind: 'truncate-body', afterBytes: 50 * MiB, keepLength: false, match: BLOBS, times: 1 },
    ];
    const down = await faultProxy(rules);
    const pulled = await pull('truncate', down.host, 'faults/truncate', down.log, () => firedPerKind(rules, down.fired));
    assert.equal(down.fired(0) + down.fired(1), 2);
    assertRangeResumes(pulled, 2);
  });

  it('500/502/503/429 bursts, with Retry-After (seconds) and without (exponential backoff)', async () => {
    const upRules: FaultRule[] = [
      { kind: 'status-burst', status: 429, count: 1, retryAfter: '1', method: 'PATCH', match: UPLOADS },
      { kind: 'status-burst', status: 503, count: 1, retryAfter: '1', method: 'POST', match: UPLOADS },
      { kind: 'status-burst', status: 502, count: 1, retryAfter: '0', method: 'PUT', match: /\/manifests\// },
      { kind: 'status-burst', status: 500, count: 1, method: 'PATCH', match: UPLOADS },
      { kind: 'status-burst', status: 502, count: 2, method: 'HEAD', match: BLOBS },
      { kind: 'status-burst', status: 503, count: 1, method: 'PUT', match: UPLOADS },
      { kind: 'status-burst', status: 429, count: 1, method: 'HEAD', match: /\/manifests\// },
    ];
    const up = await faultProxy(upRules);
    const t0 = Date.now();
    await push('bursts', up.host, 'faults/bursts', up.log, () => firedPerKind(upRules, up.fired));
    upRules.forEach((r, i) => assert.equal(up.fired(i), (r as { count: number }).count, `push rule ${i}`));
    // `Retry-After: 1` answers were honoured, so the push took at least a second.
    assert.ok(Date.now() - t0 >= 1000, 'Retry-After was waited for');

    const rules: FaultRule[] = [
      { kind: 'status-burst', status: 503, count: 2, retryAfter: '1', method: 'GET', match: BLOBS },
      { kind: 'status-burst', status: 429, count: 1, retryAfter: '1', match: /\/manifests\// },
      { kind: 'status-burst', status: 500, count: 1, method: 'GET', match: BLOBS },
      { kind: 'status-burst', status: 502, count: 1, method: 'GET', match: BLOBS },
      { kind: 'status-burst', status: 429, count: 1, method: 'GET', match: BLOBS },
      { kind: 'status-burst', status: 503, count: 1, match: /\/manifests\// },
    ];
    const down = await faultProxy(rules);
    await pull('bursts', down.host, 'faults/bursts', down.log, () => firedPerKind(rules, down.fired));
    rules.forEach((r, i) => assert.equal(down.fired(i), (r as { count: number }).count, `pull rule ${i}`));
  });

  it('upload session dropped (404 BLOB_UPLOAD_UNKNOWN to a PATCH and to the closing PUT): kit asks the registry and goes on, or starts a new session when it is really gone', async () => {
    const upRules: UploadFaultRule[] = [
      // Really gone: the session is cancelled on the registry, kit must start the blob again.
      { kind: 'session-404', nth: [2], drop: true },
      // Only the answer was lost on the way: the registry still holds the session.
      { kind: 'session-404', nth: [12] },
      { kind: 'session-404', method: 'PUT', emptyBody: true, nth: [1] },
    ];
    const up = await uploadProxy(upRules);
    // 8 MiB chunks (KIT_UPLOAD_CHUNK_SIZE): what a lost session costs is what it held.
    const pushed = await push('session-dropped', up.host, 'faults/session', up.log, () => firedPerKind(upRules, up.fired), { KIT_UPLOAD_CHUNK_SIZE: String(8 * MiB) });
    upRules.forEach((_r, i) => assert.equal(up.fired(i), 1));
    const statusChecks = pushed.filter((e) => e.method === 'GET' && UPLOADS.test(e.url));
    assert.ok(statusChecks.length >= 3, `GET on the upload URL after each 404 (${statusChecks.length})`);
    const posts = pushed.filter((e) => e.method === 'POST' && UPLOADS.test(e.url) && e.status === 202);
    const patches = pushed.filter((e) => e.method === 'PATCH');
    // The dropped session forces one restart from byte 0; the surviving one does not.
    assert.equal(stepsBack(pushed), 1, 'one step back to byte 0: after the real drop, not after the lost answer');
    assert.ok(patches.filter((e) => patchStart(e) === 0).length >= 2, 'byte 0 sent again only because the session was gone');
    assert.ok(posts.length >= 2);

    const down = await faultProxy([]);
    await pull('session-dropped', down.host, 'faults/session', down.log, () => ({}));
  });

  it('random faults with a fixed seed', async () => {
    // Every random rule targets the weight blob only: its requests are sequential, so the seeded
    // dice are rolled in the same order on every run (other blobs move concurrently).
    const weight = new RegExp(`/blobs/${big.weightDigest}`);
    const upRules: FaultRule[] = [
      { kind: 'status-burst', status: 503, count: 2, probability: 0.2, method: 'PATCH', match: UPLOADS },
      { kind: 'status-burst', status: 502, count: 2, probability: 0.5, method: 'HEAD', match: weight },
      { kind: 'stall', ms: 600_000, probability: 0.2, times: 1, method: 'PATCH', match: UPLOADS },
    ];
    const up = await faultProxy(upRules, 20251127);
    await push('random', up.host, 'faults/random', up.log, () => firedPerKind(upRules, up.fired));

    const rules: FaultRule[] = [
      { kind: 'reset-mid-body', afterBytes: 32 * MiB, probability: 0.75, times: 2, match: weight },
      { kind: 'truncate-body', afterBytes: 64 * MiB, probability: 0.75, times: 1, match: weight },
      { kind: 'status-burst', status: 503, count: 2, probability: 0.3, method: 'GET', match: weight },
    ];
    const down = await faultProxy(rules, 7);
    await pull('random', down.host, 'faults/random', down.log, () => firedPerKind(rules, down.fired));
    const injected = [0, 1, 2].reduce((n, i) => n + up.fired(i) + down.fired(i), 0);
    assert.ok(injected >= 4, `the seeded schedule injected ${injected} faults`);
  });
});
