/**
 * Running the real bin/kit for the reliability suites: as a child that can be killed at a chosen
 * moment, optionally as another user (root runs the permission tests as `nobody`), and reading
 * `kit store verify --json`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KIT_BIN, REPO_ROOT } from '../../helpers/cli.js';

export interface KitRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface KitSpawnOptions {
  home: string;
  env?: Record<string, string>;
  input?: string;
  cwd?: string;
  /** Run as this user and group (only root may). */
  uid?: number;
  gid?: number;
  /** Kill with SIGKILL after this many milliseconds (if still running). */
  killAfterMs?: number;
  /** Give up (SIGKILL, and a failed run) after this long; default 60 s. */
  timeoutMs?: number;
  /** Run under this umask (through sh), e.g. '000'. */
  umask?: string;
}

/** The environment every kit child gets: its own KIT_HOME and config folders, no colours, no terminal. */
export function kitEnv(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    KIT_HOME: home,
    KIT_CONFIG_HOME: join(home, 'config'),
    DOCKER_CONFIG: join(home, 'docker'),
    NO_COLOR: '1',
    CI: '1',
    ...extra,
  };
}

export function spawnKit(args: string[], opts: KitSpawnOptions): { child: ChildProcess; done: Promise<KitRun> } {
  const started = Date.now();
  const [cmd, argv] =
    opts.umask === undefined ? [process.execPath, [KIT_BIN, ...args]] : ['sh', ['-c', `umask ${opts.umask} && exec "$0" "$@"`, process.execPath, KIT_BIN, ...args]];
  const child = spawn(cmd, argv, {
    cwd: opts.cwd ?? REPO_ROOT,
    env: kitEnv(opts.home, opts.env),
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
    ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(opts.input ?? '');
  const timers: NodeJS.Timeout[] = [];
  if (opts.killAfterMs !== undefined) timers.push(setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs));
  timers.push(
    setTimeout(() => {
      stderr += `\n[test] kit ${args.join(' ')} timed out after ${opts.timeoutMs ?? 60_000} ms: killed\n`;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000),
  );
  const done = new Promise<KitRun>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      for (const t of timers) clearTimeout(t);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
  return { child, done };
}

export function kit(args: string[], opts: KitSpawnOptions): Promise<KitRun> {
  return spawnKit(args, opts).done;
}

/** Runs kit and fails with its stderr unless it exits 0. */
export async function kitOk(args: string[], opts: KitSpawnOptions): Promise<KitRun> {
  const r = await kit(args, opts);
  if (r.code !== 0) throw new Error(`kit ${args.join(' ')} exited ${r.code ?? r.signal}:\n${r.stderr}`);
  return r;
}

export interface VerifyJson {
  store: string;
  clean: boolean;
  blobs: number;
  bytes: number;
  tags: number;
  entries: number;
  unreferenced: { blobs: number; bytes: number };
  problems: Array<{ kind: string; digest?: string; path?: string; message: string }>;
  leftovers: Array<{ path: string; kind: string; bytes: number; owner: string; pid?: number; message: string }>;
}

/** `kit store verify --json`, parsed; `code` is its exit code. */
export async function verifyStore(home: string, opts: Partial<KitSpawnOptions> = {}): Promise<VerifyJson & { code: number | null; stderr: string }> {
  const r = await kit(['store', 'verify', '--json'], { ...opts, home });
  let parsed: VerifyJson;
  try {
    parsed = JSON.parse(r.stdout) as VerifyJson;
  } catch {
    throw new Error(`kit store verify --json printed no JSON (exit ${r.code ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  }
  return { ...parsed, code: r.code, stderr: r.stderr };
}

/** Names and sizes of the files in the store's ingest folder. */
export async function ingestFiles(home: string): Promise<Array<{ name: string; size: number }>> {
  const dir = join(home, 'store', 'ingest');
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: Array<{ name: string; size: number }> = [];
  for (const name of names.sort()) {
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (st) out.push({ name, size: st.size });
  }
  return out;
}

/** Bytes held in interrupted downloads (`<hex>.partial`). */
export async function partialBytes(home: string): Promise<number> {
  return (await ingestFiles(home)).filter((f) => f.name.endsWith('.partial')).reduce((n, f) => n + f.size, 0);
}

/** Polls `check` every `everyMs` until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(everyMs);
  }
  return false;
}

/** The one-line failure kit must give: a `kit: ` line first, no stack trace without -v. */
export function failureLine(stderr: string): string | undefined {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  const first = lines[0];
  if (first === undefined || !first.startsWith('kit: ')) return undefined;
  if (lines.some((l) => /^\s+at /.test(l))) return undefined;
  return first;
}

/**
 * Runs kit and kills it (SIGKILL) `delayMs()` milliseconds after `started()` first returns true
 * (polled every few ms): a moment inside the work itself rather than while node loads.
 * `markerMs` is when the marker was seen (undefined if the run ended first).
 */
export async function killDuringWork(
  args: string[],
  opts: KitSpawnOptions,
  started: () => Promise<boolean>,
  delayMs: () => number,
): Promise<KitRun & { markerMs?: number; killAtMs?: number }> {
  const t0 = Date.now();
  const { child, done } = spawnKit(args, opts);
  let ended = false;
  void done.then(() => (ended = true));
  let markerMs: number | undefined;
  let killAtMs: number | undefined;
  while (!ended) {
    if (await started()) {
      markerMs = Date.now() - t0;
      const d = delayMs();
      killAtMs = markerMs + d;
      const timer = setTimeout(() => child.kill('SIGKILL'), d);
      const r = await done;
      clearTimeout(timer);
      return { ...r, markerMs, killAtMs };
    }
    await sleep(5);
  }
  return { ...(await done) };
}

/** True once `path` exists. */
export function exists(path: string): () => Promise<boolean> {
  return () => stat(path).then(() => true, () => false);
}

/** True once `dir` holds a file whose name passes `test`. */
export function hasFile(dir: string, test: (name: string) => boolean): () => Promise<boolean> {
  return async () => (await readdir(dir).catch(() => [] as string[])).some(test);
}
