/**
 * Issue 4 (`kit pull --parallel-ranges`): a large blob is pulled over several connections with Range requests, hashed in
 * order as it arrives, and the download falls back to one stream when the registry ignores
 * Range or answers with another range. Real CLI, real registry (distribution on 127.0.0.1),
 * the fault proxy in front of it to count requests and bytes and to make a registry that
 * ignores Range (distribution honours it, so that behaviour has to be made).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { registrySkipReason, startRegistry, type RunningRegistry } from './harness/registry-server.js';
import { startFaultProxy, type FaultProxy, type FaultRule } from './harness/fault-proxy.js';
import { tempDir } from '../helpers/tmp.js';
import { KIT_BIN } from '../helpers/cli.js';
import { MiB, kit, kitEnv, kitOk, packBigArtifact, pulledWeightDigest, sumOut, type BigArtifact, type LogEntryLike } from '../reliability/helpers-faults/common.js';

const skip = await registrySkipReason();
const WEIGHT_MIB = 96;
const PIECE = 4 * MiB;

describe('pulling a large blob in ranges (real CLI, real registry)', { skip }, () => {
  let reg: RunningRegistry;
  let big: BigArtifact;
  const stoppers: Array<() => Promise<void>> = [];

  before(async () => {
    reg = await startRegistry();
    big = await packBigArtifact(WEIGHT_MIB, 'ranged-pull');
    await kitOk(['push', big.ref, `${reg.host}/ranged/model:1`], big.home);
  });

  after(async () => {
    for (const s of stoppers.splice(0).reverse()) await s().catch(() => {});
    await reg?.stop();
  });

  async function proxy(rules: FaultRule[] = []): Promise<FaultProxy> {
    const p = await startFaultProxy({ target: reg.url, rules });
    stoppers.push(() => p.stop());
    return p;
  }

  const weightGets = (log: readonly LogEntryLike[]) => log.filter((e) => e.method === 'GET' && e.url.includes(big.weightDigest));

  async function pullVia(p: FaultProxy, home?: string): Promise<{ home: string; gets: LogEntryLike[]; moved: number }> {
    const from = p.log.length;
    const h = home ?? (await tempDir('kit-ranged-'));
    const out = JSON.parse(await kitOk(['pull', `${p.host}/ranged/model:1`, '--json', '--parallel-ranges'], h)) as { digest: string };
    assert.equal(out.digest, big.digest);
    assert.equal(await pulledWeightDigest(h, big), big.weightDigest, 'the pulled weights hash to their digest');
    const verify = await kit(['store', 'verify'], h);
    assert.equal(verify.code, 0, verify.stderr);
    const mine = p.log.slice(from);
    return { home: h, gets: weightGets(mine), moved: sumOut(mine) };
  }

  it('fetches the weights in 4 MiB ranges that tile the blob exactly, each byte once', async () => {
    const p = await proxy();
    const { gets, moved } = await pullVia(p);
    const ranges = gets.map((e) => /^bytes=(\d+)-(\d+)$/.exec(String(e.headers.range)));
    assert.ok(ranges.every((m) => m !== null), `every GET of the weights asks for a closed range: ${gets.map((e) => e.headers.range).join(', ')}`);
    const spans = ranges.map((m) => [Number(m![1]), Number(m![2]) + 1] as const).sort((a, b) => a[0] - b[0]);
    assert.equal(spans.length, (WEIGHT_MIB * MiB) / PIECE);
    let at = 0;
    for (const [s, e] of spans) {
      assert.equal(s, at, 'no gap and no overlap');
      at = e;
    }
    assert.equal(at, WEIGHT_MIB * MiB);
    assert.ok(gets.every((e) => e.status === 206));
    assert.ok(moved < big.bytes * 1.01, `moved ${moved} bytes for a ${big.bytes}-byte artifact`);
  });

  it('a registry that ignores Range: the first answer (200) is dropped and the blob comes in one stream', async () => {
    const p = await proxy([{ kind: 'ignore-range' }]);
    const { gets } = await pullVia(p);
    assert.ok(gets.length >= 2, 'the probe, then the single stream');
    assert.ok(gets.every((e) => e.status === 200));
    assert.equal(gets.filter((e) => e.headers.range === undefined).length, 1, 'one GET without Range: the single stream');
  });

  it('a registry that answers another range than asked: refused, and the blob comes in one stream', async () => {
    const p = await proxy([{ kind: 'set-header', match: new RegExp(big.weightDigest.slice('sha256:'.length)), name: 'content-range', value: `bytes 1-${PIECE}/${WEIGHT_MIB * MiB}` }]);
    const { gets } = await pullVia(p);
    assert.ok(gets.some((e) => e.headers.range === undefined), 'fell back to a GET without Range');
  });

  it('a range whose connection breaks is fetched again from where it broke, not from its start', async () => {
    const p = await proxy([{ kind: 'reset-mid-body', match: new RegExp(big.weightDigest.slice('sha256:'.length)), afterBytes: 2 * MiB, times: 2 }]);
    const { gets, moved } = await pullVia(p);
    const resumed = gets.filter((e) => {
      const m = /^bytes=(\d+)-/.exec(String(e.headers.range));
      return m !== null && Number(m[1]) % PIECE !== 0;
    });
    assert.ok(resumed.length >= 1, `a range continued mid-piece: ${gets.map((e) => e.headers.range).join(', ')}`);
    assert.ok(moved < big.bytes * 1.05, `moved ${moved} bytes for a ${big.bytes}-byte artifact`);
  });

  it('killed mid-download, the next pull continues from the bytes the journal records', async () => {
    // Every response of the weights stalls after 2 MiB (kit gives up on it after 2 s and asks for
    // the rest): the download crawls, so it is still running when the journal shows a prefix.
    const p = await proxy([{ kind: 'stall', match: new RegExp(big.weightDigest.slice('sha256:'.length)), ms: 60_000, afterBytes: 2 * MiB, times: 1000 }]);
    const home = await tempDir('kit-ranged-kill-');
    const ingest = join(home, 'store', 'ingest');
    const child = spawn(process.execPath, [KIT_BIN, 'pull', `${p.host}/ranged/model:1`, '--parallel-ranges'], { env: { ...process.env, KIT_HOME: home, ...kitEnv(home) }, stdio: 'ignore' });
    // Wait until the journal records a prefix (one stalled range holds the rest back), then kill.
    const deadline = Date.now() + 60_000;
    let prefix = 0;
    while (Date.now() < deadline && prefix === 0) {
      await sleep(100);
      const journal = (await readdir(ingest).catch(() => [] as string[])).find((n) => n.endsWith('.partial.ranges'));
      if (journal) prefix = (JSON.parse(await import('node:fs/promises').then((f) => f.readFile(join(ingest, journal), 'utf8')).catch(() => '{}')) as { prefix?: number }).prefix ?? 0;
    }
    assert.equal(child.exitCode, null, 'the pull was still running when the journal showed a prefix');
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    assert.ok(prefix > 0, 'the journal recorded a prefix before the kill');
    const partial = (await readdir(ingest)).find((n) => n.endsWith('.partial'))!;
    assert.ok((await stat(join(ingest, partial))).size >= prefix);

    const again = await pullVia(await proxy(), home);
    const starts = again.gets.map((e) => Number(/^bytes=(\d+)-/.exec(String(e.headers.range))?.[1] ?? -1));
    assert.ok(Math.min(...starts) >= prefix, `the re-run asked for nothing before byte ${prefix}: ${starts.join(', ')}`);
    assert.ok(again.moved <= big.bytes - prefix + MiB, 'the bytes already held were not fetched again');
  });
});
