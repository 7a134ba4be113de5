/**
 * A real CNCF distribution registry (Debian's `docker-registry`, distribution 2.8) for the
 * integration tests: started on 127.0.0.1 with a free port, a temporary storage folder and a
 * generated config, and stopped by the test (or, failing that, when the process exits).
 *
 *   const reg = await startRegistry();                        // plain HTTP, anonymous
 *   const reg = await startRegistry({ tls: { cert, key }, auth: { htpasswd: { realm, path } } });
 *
 * Suites that need it start with `ensureRegistry()` / `registrySkipReason()`: when the binary is
 * missing and we run as root, it is installed with apt-get (with skopeo); otherwise the suite is
 * skipped loudly, or fails when KIT_REQUIRE_REGISTRY=1.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import type { RegistryClient, RegistryRequest, RegistryResponse } from '../../../src/registry/types.js';

export const REGISTRY_BINARY = 'docker-registry';

export interface StartRegistryOptions {
  /** PEM file paths of the server certificate and key: serve HTTPS. */
  tls?: { cert: string; key: string };
  /** distribution's `auth:` section, e.g. { htpasswd: { realm, path } } or { token: { realm, service, issuer, rootcertbundle } }. */
  auth?: Record<string, unknown>;
  /** Merged (deeply) over the generated config, e.g. { http: { tls: { clientcas: [ca] } } }. */
  extraConfig?: Record<string, unknown>;
  /** How long to wait for GET /v2/ to answer. Default 20 s. */
  startTimeoutMs?: number;
  /** A client certificate for the readiness probe, when the registry demands one (mutual TLS). */
  probeClientCert?: { cert: string; key: string };
}

export interface RunningRegistry {
  /** 127.0.0.1:PORT, as in a reference. */
  host: string;
  /** http(s)://127.0.0.1:PORT */
  url: string;
  /** The storage root (filesystem driver). */
  storage: string;
  /** The registry's stdout and stderr, for diagnosing a failed test. */
  logFile: string;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------- availability

/** Whether `docker-registry` is on PATH. */
export function registryAvailable(): boolean {
  return onPath(REGISTRY_BINARY);
}

function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

let installing: Promise<void> | undefined;

/** apt-get install docker-registry skopeo, once per process; only as root. */
function installWithApt(): Promise<void> {
  installing ??= (async () => {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    process.stderr.write(`\n[registry-server] ${REGISTRY_BINARY} not found: installing docker-registry and skopeo with apt-get...\n`);
    for (const args of [['update'], ['install', '-y', '--no-install-recommends', 'docker-registry', 'skopeo']]) {
      const r = spawnSync('apt-get', args, { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10 * 60_000 });
      if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr?.toString().slice(-2000)}`);
    }
  })();
  return installing;
}

/**
 * undefined when a registry can be started (installing it first as root when missing), else the
 * reason the suite must be skipped. With KIT_REQUIRE_REGISTRY=1 a missing registry throws.
 */
export async function registrySkipReason(): Promise<string | undefined> {
  if (registryAvailable()) return undefined;
  let why = `${REGISTRY_BINARY} is not installed`;
  if (process.getuid?.() === 0 && onPath('apt-get')) {
    try {
      await installWithApt();
      if (registryAvailable()) return undefined;
      why = `${REGISTRY_BINARY} is still missing after apt-get install`;
    } catch (err) {
      why = `installing ${REGISTRY_BINARY} failed: ${(err as Error).message}`;
    }
  } else {
    why += ' (install it with `apt-get install docker-registry skopeo`, or run the tests as root to have it installed)';
  }
  if (process.env.KIT_REQUIRE_REGISTRY === '1') throw new Error(`KIT_REQUIRE_REGISTRY=1 but ${why}`);
  process.stderr.write(`\n${'!'.repeat(78)}\n!! SKIPPING registry integration tests: ${why}\n!! Set KIT_REQUIRE_REGISTRY=1 to make this a failure.\n${'!'.repeat(78)}\n\n`);
  return `registry integration tests skipped: ${why}`;
}

/**
 * For use inside a test or a `before` hook: true when a registry can be started; otherwise
 * skips `t` (with the reason) and returns false. Throws under KIT_REQUIRE_REGISTRY=1.
 */
export async function ensureRegistryOrSkip(t: { skip(message?: string): void }): Promise<boolean> {
  const reason = await registrySkipReason();
  if (reason === undefined) return true;
  t.skip(reason);
  return false;
}

// ---------------------------------------------------------------- start / stop

/**
 * The registry runs under a small shell watchdog whose stdin is a pipe from this process. When
 * the pipe closes, because stop() ended it or because this process died in any way (even by
 * SIGKILL, when no exit handler runs), the watchdog kills the registry. A registry that exits by
 * itself ends the watchdog too. $1: config, $2: pid file.
 */
const WATCHDOG = [
  'exec 3<&0', // keep the pipe: background jobs get /dev/null as stdin
  `${REGISTRY_BINARY} serve "$1" </dev/null 3<&- & pid=$!`,
  'echo "$pid" > "$2"',
  '( read -r _ <&3; kill "$pid" 2>/dev/null ) &',
  'wait "$pid"',
].join('\n');

/** Folders of registries not stopped yet: removed at exit if a test never called stop(). */
const liveDirs = new Set<string>();
let exitHookInstalled = false;

function removeAtExit(dir: string): void {
  liveDirs.add(dir);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  });
}

/** A port that was free a moment ago (the kernel's pick for port 0). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port from listen(0)');
  return address.port;
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<RunningRegistry> {
  if (!registryAvailable()) {
    const reason = await registrySkipReason();
    if (reason !== undefined) throw new Error(reason);
  }
  const dir = await mkdtemp(join(tmpdir(), 'kit-registry-'));
  removeAtExit(dir);
  const storage = join(dir, 'storage');
  await mkdir(storage);
  // Another process may take the port between our probe and the registry's bind: try again.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await launch(dir, storage, await freePort(), opts, attempt);
    } catch (err) {
      lastError = err;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
  throw lastError;
}

async function launch(dir: string, storage: string, port: number, opts: StartRegistryOptions, attempt: number): Promise<RunningRegistry> {
  const host = `127.0.0.1:${port}`;
  const url = `${opts.tls ? 'https' : 'http'}://${host}`;
  const configPath = join(dir, `config-${attempt}.json`);
  const logFile = join(dir, `registry-${attempt}.log`);
  await writeFile(configPath, JSON.stringify(registryConfig(host, storage, opts), null, 2));

  // Output goes to a file, not a pipe: no open handle keeps a test process alive.
  const log = openSync(logFile, 'a');
  const pidFile = join(dir, `registry-${attempt}.pid`);
  const env: NodeJS.ProcessEnv = {};
  // REGISTRY_* variables would override the config file; keep the parent's out.
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REGISTRY_')) env[k] = v;
  const child = spawn('sh', ['-c', WATCHDOG, 'registry-watchdog', configPath, pidFile], { stdio: ['pipe', log, log], env });
  closeSync(log);
  // Neither the process nor the pipe may keep the test process alive.
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  child.stdin?.on('error', () => undefined); // EPIPE once the watchdog is gone
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin?.end(); // the watchdog kills the registry and exits once it has
      const timedOut = await raceTimeout(exited, 5000);
      if (timedOut) {
        killPid(pidFile);
        child.kill('SIGKILL');
        await exited;
      }
    }
    rmSync(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
  };

  try {
    await waitUntilReady(url, child, logFile, opts.startTimeoutMs ?? 20_000, opts.probeClientCert);
  } catch (err) {
    child.stdin?.end();
    await raceTimeout(exited, 5000);
    killPid(pidFile);
    throw err;
  }
  return { host, url, storage, logFile, stop };
}

/**
 * true when `p` did not settle within `ms`. The timer is a referenced one (the child and its
 * pipe are unref'd, so something must keep the event loop alive while we wait) and is
 * cleared as soon as `p` settles, so a test file does not linger for the full delay.
 */
async function raceTimeout(p: Promise<unknown>, ms: number): Promise<boolean> {
  const ac = new AbortController();
  try {
    return await Promise.race([p.then(() => false), sleep(ms, undefined, { signal: ac.signal }).then(() => true)]);
  } finally {
    ac.abort();
  }
}

/** Last resort: SIGKILL the registry whose pid the watchdog wrote. */
function killPid(pidFile: string): void {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 1) process.kill(pid, 'SIGKILL');
  } catch {
    // already gone, or never started
  }
}

/** distribution's config (YAML is a superset of JSON). */
function registryConfig(host: string, storage: string, opts: StartRegistryOptions): Record<string, unknown> {
  const http: Record<string, unknown> = {
    addr: host,
    // Signs upload-session state; fixed per registry so that it need not be generated.
    secret: randomBytes(16).toString('hex'),
    headers: { 'X-Content-Type-Options': ['nosniff'] },
  };
  if (opts.tls) http.tls = { certificate: opts.tls.cert, key: opts.tls.key };
  const config: Record<string, unknown> = {
    version: '0.1',
    log: { level: 'warn', accesslog: { disabled: true }, formatter: 'text' },
    storage: {
      filesystem: { rootdirectory: storage },
      delete: { enabled: true },
      cache: { blobdescriptor: 'inmemory' },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http,
  };
  if (opts.auth) config.auth = opts.auth;
  return opts.extraConfig ? deepMerge(config, opts.extraConfig) : config;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? deepMerge(b, v) : v;
  }
  return out;
}

/** Polls GET /v2/ until it answers 200 (anonymous) or 401 (auth configured). */
async function waitUntilReady(url: string, child: ChildProcess, logFile: string, timeoutMs: number, clientCert?: { cert: string; key: string }): Promise<void> {
  // Readiness only: the certificate is the test's business, not the probe's.
  const tlsClient = clientCert ? { cert: readFileSync(clientCert.cert), key: readFileSync(clientCert.key) } : {};
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false, ...tlsClient } });
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${REGISTRY_BINARY} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${tail(logFile)}`);
      }
      try {
        const res = await request(`${url}/v2/`, { dispatcher, headersTimeout: 1000, bodyTimeout: 1000 });
        await res.body.dump();
        if (res.statusCode === 200 || res.statusCode === 401) return;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new Error(`${REGISTRY_BINARY} did not answer ${url}/v2/ within ${timeoutMs} ms:\n${tail(logFile)}`);
  } finally {
    await dispatcher.close();
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------- a bare client for tests

/**
 * A minimal RegistryClient on undici: no auth, no retries, redirects followed only when asked.
 * For protocol tests that must not depend on the real client (src/registry/client.ts), and to
 * tell a protocol bug from a transport one.
 */
export function rawRegistryClient(url: string): RegistryClient {
  const base = new URL(url);
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
  return {
    registry: base.host,
    baseUrl: base.origin,
    async request(req: RegistryRequest): Promise<RegistryResponse> {
      let target = new URL(req.url, base).href;
      for (let hop = 0; ; hop++) {
        const res = await request(target, {
          dispatcher,
          method: req.method,
          headers: req.headers ?? {},
          // undici sends an async iterable too, which its types do not list.
          body: (req.body ?? req.stream?.() ?? null) as Dispatcher.RequestOptions['body'],
          ...(req.signal ? { signal: req.signal } : {}),
        });
        const location = res.headers.location;
        if (req.followRedirects && [301, 302, 303, 307, 308].includes(res.statusCode) && typeof location === 'string' && hop < 5) {
          await res.body.dump();
          target = new URL(location, target).href;
          continue;
        }
        const headers: Record<string, string | undefined> = {};
        for (const [k, v] of Object.entries(res.headers)) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
        const body = res.body;
        return {
          status: res.statusCode,
          headers,
          url: target,
          body,
          async text(maxBytes = 4 * 1024 * 1024) {
            const chunks: Buffer[] = [];
            let n = 0;
            for await (const c of body as AsyncIterable<Buffer>) {
              n += c.length;
              if (n > maxBytes) {
                body.destroy();
                throw new Error(`response body over ${maxBytes} bytes`);
              }
              chunks.push(c);
            }
            return Buffer.concat(chunks).toString('utf8');
          },
          async dump() {
            await body.dump().catch(() => undefined);
          },
        };
      }
    },
  };
}
