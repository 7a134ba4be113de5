/**
 * Runs one process under `/usr/bin/time -f '%e %U %S %M'` and returns what it used: wall time,
 * CPU time (user + sys, its waited-for children included) and peak RSS.
 *
 * Wall time is taken with the monotonic clock around the timed process (microseconds; it
 * includes the ~1 ms that /usr/bin/time itself costs, the same for kit and its baseline);
 * /usr/bin/time's own `%e` (10 ms resolution) is kept as `elapsed`. Before a cold run the page
 * cache is written back and dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) when that file
 * is writable, so every timed run reads its input from the disk.
 *
 * On a VM with free page reporting (a virtio or Hyper-V balloon that reports free pages) a cold
 * run then also waits until the VM has handed the memory just freed back to the host. Without
 * that wait a run found its fresh pages warm or not depending on how soon it touched them: the
 * host takes freed memory back about 2 s after it is freed, and a page touched after that costs
 * a fault in the host (measured here: 2 GiB written to the page cache, 0.7 s of kernel time
 * warm, 8.8-9.3 s cold): in one run `cp -r` of the same 2 GiB took 1.7 s in one repetition and
 * 5.0 s in the next. With the wait every process, kit or baseline, starts from the same state.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
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
  await settleFreedMemory();
}

const PAGE_REPORTING = '/sys/module/page_reporting';
/** A counter some kernels add (KiB handed back so far); mainline has none, so a fixed wait then. */
const REPORTED_KIB = `${PAGE_REPORTING}/parameters/reported_kib`;

/**
 * Whether this machine hands free memory back to its host: the kernel can (page_reporting) and
 * a balloon device does (virtio's VIRTIO_BALLOON_F_REPORTING, feature bit 5; Hyper-V's
 * hv_balloon). A kernel built with it on bare metal has nothing to wait for.
 */
export function reportsFreePages(): boolean {
  reporting ??= existsSync(PAGE_REPORTING) && (existsSync('/sys/module/hv_balloon') || virtioBalloonReports());
  return reporting;
}
let reporting: boolean | undefined;

function virtioBalloonReports(): boolean {
  const virtio = '/sys/bus/virtio/drivers/virtio_balloon';
  try {
    return readdirSync(virtio).some((d) => d.startsWith('virtio') && readFileSync(join(virtio, d, 'features'), 'utf8')[5] === '1');
  } catch {
    return false;
  }
}

/**
 * Waits until memory freed just now has been handed back to the host: the reporting starts
 * ~2 s after the frees; done when the counter has not moved for 1 s after 2.5 s (6 s at most),
 * or after 3 s where there is no counter.
 *
 * That is the first batch: the kernel reports 0.3-1.5 GiB every ~2.5 s, and after 15 GiB were
 * freed here it went on for over 35 s. Waiting for the last batch would add minutes to a run
 * and leave every process all-cold memory (an 8 GiB unpack: 41-48 s against 20-21 s); the
 * cost is that a process that follows a large free finds more warm memory than one that does
 * not, which the alternating order evens out over repetitions (not with --reps 1).
 */
async function settleFreedMemory(): Promise<void> {
  if (!reportsFreePages()) return;
  const counter = (): string | undefined => {
    try {
      return readFileSync(REPORTED_KIB, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const start = Date.now();
  let last = counter();
  if (last === undefined) return sleep(3000);
  let still = start;
  while (Date.now() - start < 6000) {
    await sleep(100);
    const now = counter();
    if (now !== last) {
      last = now;
      still = Date.now();
    } else if (Date.now() - start >= 2500 && Date.now() - still >= 1000) return;
  }
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
