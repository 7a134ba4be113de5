/**
 * Shared pieces of the reliability suites: running the real CLI with a short stall timeout,
 * a deterministic 256 MiB artifact, byte accounting over proxy logs, and a tally of faults
 * injected and bytes re-sent that each suite prints at its end.
 */
import assert from 'node:assert/strict';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { spawn } from 'node:child_process';
import { KIT_BIN, REPO_ROOT, type RunResult } from '../../helpers/cli.js';
import { tempDir } from '../../helpers/tmp.js';

export const MiB = 1024 * 1024;

/** The stall timeout the CLI runs with in these suites (KIT_HTTP_TIMEOUT_MS): 2 s instead of 60 s. */
export const TEST_HTTP_TIMEOUT_MS = 2000;

export function kitEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    KIT_CONFIG_HOME: join(home, 'config'),
    DOCKER_CONFIG: join(home, 'docker'),
    KIT_HTTP_TIMEOUT_MS: String(TEST_HTTP_TIMEOUT_MS),
    ...extra,
  };
}

/**
 * The real CLI (bin/kit), as runKit runs it, but killed after `timeoutMs`: a hostile input that
 * made kit hang (a FIFO read, a stalled server) fails the test instead of stalling the suite.
 */
export function kit(args: string[], home: string, extra: Record<string, string> = {}, timeoutMs = 90_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [KIT_BIN, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, KIT_HOME: home, NO_COLOR: '1', CI: '1', ...kitEnv(home, extra) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut) reject(new Error(`kit ${args.join(' ')} did not finish within ${timeoutMs} ms (killed)\n${stderr}`));
      else resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end('');
  });
}

export async function kitOk(args: string[], home: string, extra: Record<string, string> = {}): Promise<string> {
  const r = await kit(args, home, extra);
  assert.equal(r.code, 0, `kit ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r.stdout;
}

/** Deterministic pseudo-random bytes (AES-CTR of zeros), streamed. */
export function noise(seed: string, size: number): Readable {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(1024 * 1024);
  let left = size;
  return new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const n = Math.min(left, zeros.length);
      left -= n;
      this.push(cipher.update(zeros.subarray(0, n)));
    },
  });
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

export interface BigArtifact {
  /** KIT_HOME whose store holds the packed artifact. */
  home: string;
  /** Its local reference. */
  ref: string;
  digest: string;
  /** Sum of the sizes of every blob of the artifact, manifest included. */
  bytes: number;
  /** Digest (= sha256 of the bytes) of the big weight layer. */
  weightDigest: string;
  weightSize: number;
}

/** A project with one `weightMiB` MiB weight file and a README, packed into a fresh store. */
export async function packBigArtifact(weightMiB = 256, seed = 'reliability'): Promise<BigArtifact> {
  const dir = await tempDir('kit-big-');
  await mkdir(join(dir, 'models'));
  const weight = join(dir, 'models', 'weights.safetensors');
  await pipeline(noise(seed, weightMiB * MiB), createWriteStream(weight));
  await writeFile(join(dir, 'README.md'), '# big\n');
  await writeFile(join(dir, 'Kitfile'), 'manifestVersion: 1.0.0\npackage:\n  name: big\nmodel:\n  path: models/weights.safetensors\ndocs:\n  - path: README.md\n');
  const home = await tempDir('kit-big-home-');
  const ref = 'reliability.example/big/model:1';
  const out = JSON.parse(await kitOk(['pack', dir, '-t', ref, '--json'], home)) as { digest: string };
  const weightDigest = await sha256File(weight);
  const blobs = join(home, 'store', 'blobs', 'sha256');
  let bytes = 0;
  for (const name of await readdir(blobs)) bytes += (await stat(join(blobs, name))).size;
  return { home, ref, digest: out.digest, bytes, weightDigest, weightSize: weightMiB * MiB };
}

/** The bytes of the pulled weight layer, re-hashed from the store of `home`. */
export async function pulledWeightDigest(home: string, a: BigArtifact): Promise<string> {
  const path = join(home, 'store', 'blobs', 'sha256', a.weightDigest.slice('sha256:'.length));
  assert.equal((await stat(path)).size, a.weightSize);
  return sha256File(path);
}

/** Index entries of a store, for before/after comparisons. */
export async function storeIndex(home: string): Promise<string> {
  return readFile(join(home, 'store', 'index.json'), 'utf8').catch(() => '(no index)');
}

// ---------------------------------------------------------------- accounting

export interface LogEntryLike {
  method: string;
  url: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytesIn: number;
  bytesOut: number;
}

export const sumIn = (log: LogEntryLike[]): number => log.reduce((n, e) => n + e.bytesIn, 0);
export const sumOut = (log: LogEntryLike[]): number => log.reduce((n, e) => n + e.bytesOut, 0);

/** First byte of a PATCH's Content-Range (`<first>-<last>`), or undefined. */
export function patchStart(e: LogEntryLike): number | undefined {
  const cr = e.headers['content-range'];
  const m = typeof cr === 'string' ? /^(?:bytes[ =])?(\d+)-\d+/.exec(cr) : null;
  return m ? Number(m[1]) : undefined;
}

/**
 * How many times the upload went back to an earlier offset, over the PATCHes in `log` (in the
 * order the proxy finished them): a chunk sent again at the same offset is not a step back, a
 * new session from byte 0 is.
 */
export function stepsBack(log: LogEntryLike[]): number {
  const starts = log.filter((e) => e.method === 'PATCH').map(patchStart).filter((s): s is number => s !== undefined);
  let back = 0;
  for (let i = 1; i < starts.length; i++) if (starts[i]! < starts[i - 1]!) back++;
  return back;
}

export interface TallyRow {
  suite: string;
  test: string;
  direction: 'push' | 'pull';
  faults: Record<string, number>;
  /** Bytes the client sent (push) or received (pull) through the proxy. */
  moved: number;
  /** The artifact's size. */
  artifact: number;
  ms: number;
}

const rows: TallyRow[] = [];

export function record(row: TallyRow): void {
  rows.push(row);
  const ratio = row.moved / row.artifact;
  assert.ok(ratio <= 1.25, `${row.test} (${row.direction}): ${row.moved} bytes moved for a ${row.artifact}-byte artifact (${ratio.toFixed(3)}x > 1.25x)`);
}

/** One line per transfer, and totals: faults injected per kind, bytes re-sent. */
export function tallyReport(suite: string): string {
  const mine = rows.filter((r) => r.suite === suite);
  const perKind: Record<string, number> = {};
  let resent = 0;
  const lines = mine.map((r) => {
    for (const [k, n] of Object.entries(r.faults)) perKind[k] = (perKind[k] ?? 0) + n;
    const extra = Math.max(0, r.moved - r.artifact);
    resent += extra;
    const faults = Object.entries(r.faults).map(([k, n]) => `${k}=${n}`).join(' ') || 'none';
    return `${r.test} [${r.direction}] faults: ${faults}; moved ${r.moved} B (${(r.moved / r.artifact).toFixed(3)}x), re-sent ${extra} B; ${r.ms} ms`;
  });
  const total = Object.values(perKind).reduce((a, b) => a + b, 0);
  lines.push(`TOTAL faults injected: ${total} (${Object.entries(perKind).map(([k, n]) => `${k}=${n}`).join(', ')}); bytes re-sent: ${resent}`);
  return lines.map((l) => `[${suite}] ${l}`).join('\n');
}
