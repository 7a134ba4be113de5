/**
 * Runs one process under `/usr/bin/time -f '%e %U %S %M'` and returns what it used: wall time,
 * CPU time (user + sys, its waited-for children included) and peak RSS.
 *
 * Wall time is taken with the monotonic clock around the timed process (microseconds; it
 * includes the ~1 ms that /usr/bin/time itself costs, the same for kit and its baseline);
 * /usr/bin/time's own `%e` (10 ms resolution) is kept as `elapsed`. Before a cold run the page
 * cache is written back and dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) when that file
 * is writable, so every timed run reads its input from the disk.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export const TIME_BIN = '/usr/bin/time';

export interface Sample {
  /** Seconds, monotonic clock. */
  wall: number;
  /** Seconds, /usr/bin/time %e. */
  elapsed: number;
  user: number;
  sys: number;
  /** user + sys, seconds. */
  cpu: number;
  /** Peak resident set size, KiB (%M). */
  rssKiB: number;
}

export interface Timed extends Sample {
  stdout: string;
  stderr: string;
}

export interface TimedOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Drop the page cache first (when allowed). */
  cold?: boolean;
}

let dropAllowed: boolean | undefined;

/** Whether this process may drop the page cache (root, and /proc/sys/vm/drop_caches writable). */
export function canDropCaches(): boolean {
  if (dropAllowed === undefined) {
    try {
      spawnSync('sync');
      writeFileSync('/proc/sys/vm/drop_caches', '3');
      dropAllowed = true;
    } catch {
      dropAllowed = false;
    }
  }
  return dropAllowed;
}

export async function dropCaches(): Promise<void> {
  if (!canDropCaches()) return;
  spawnSync('sync');
  await writeFile('/proc/sys/vm/drop_caches', '3');
}

/** Run `cmd args` under /usr/bin/time; throws (with the tail of stderr) when it fails. */
export async function timed(cmd: string, args: string[], opts: TimedOptions = {}): Promise<Timed> {
  if (opts.cold) await dropCaches();
  const report = join(tmpdir(), `kit-bench-time-${randomBytes(6).toString('hex')}`);
  const started = process.hrtime.bigint();
  const { code, stdout, stderr } = await run(TIME_BIN, ['-f', '%e %U %S %M', '-o', report, cmd, ...args], opts);
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  const text = await readFile(report, 'utf8').catch(() => '');
  await rm(report, { force: true });
  if (code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${stderr.slice(-3000)}`);
  }
  // On failure /usr/bin/time writes "Command exited with non-zero status N" first: the figures are the last line.
  const last = text.trim().split('\n').pop() ?? '';
  const [elapsed, user, sys, rss] = last.split(/\s+/).map(Number);
  if ([elapsed, user, sys, rss].some((n) => n === undefined || Number.isNaN(n))) throw new Error(`unreadable ${TIME_BIN} output: ${JSON.stringify(text)}`);
  return { wall, elapsed: elapsed!, user: user!, sys: sys!, cpu: user! + sys!, rssKiB: rss!, stdout, stderr };
}

function run(cmd: string, args: string[], opts: TimedOptions): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr }));
  });
}

/** Only the figures of a Timed (what goes into the results). */
export function sampleOf(t: Timed): Sample {
  return { wall: t.wall, elapsed: t.elapsed, user: t.user, sys: t.sys, cpu: t.cpu, rssKiB: t.rssKiB };
}
