import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { Agent, EnvHttpProxyAgent, ProxyAgent, type Dispatcher } from 'undici';
import { KitError, errnoCode } from '../errors.js';
import { KIT_VERSION } from '../version.js';
import { findCredential } from './credentials/find.js';
import type { CredentialSource } from './credentials/types.js';
import { HttpRegistryClient, PLAIN_HTTP_TLS_CODES } from './http.js';
import { loadRegistrySettings, registrySettingsPath } from './settings.js';
import type { RegistryClient, RegistrySettings } from './types.js';

export interface CreateRegistryClientOptions {
  /** Wins over the per-registry settings file, field by field (undefined fields do not count). */
  settings?: RegistrySettings;
  /** Default: findCredential (kit's auth.json, Docker's config and helpers, environment). */
  credentials?: CredentialSource;
  userAgent?: string;
  /** Attempts per request, the first included. Default 5. */
  maxAttempts?: number;
  /** First retry delay in ms (doubles each time, full jitter, capped at 10 s). Default 200. */
  baseDelayMs?: number;
}

/** Docker Hub is named `docker.io` in references but served from another host. */
const DOCKER_HUB_HOST = 'registry-1.docker.io';

/** What the loopback TLS probe learnt, for the rest of the process. */
const loopbackSchemes = new Map<string, 'http' | 'https'>();

function parseRegistry(registry: string): URL {
  const r = registry.trim().toLowerCase();
  const host = r === 'docker.io' || r === 'index.docker.io' ? DOCKER_HUB_HOST : r;
  let url: URL | undefined;
  try {
    url = new URL(`https://${host}`);
  } catch {
    url = undefined;
  }
  // URL drops a default port, so `r.io:443` comes back as `r.io`.
  if (!url || url.host !== host.replace(/:443$/, '') || url.pathname !== '/' || url.username || url.password || host === '') {
    throw new KitError('REGISTRY_INVALID', `${JSON.stringify(registry)} is not a registry host[:port]`, {
      hint: 'name a registry as in a reference, e.g. registry.example.com or localhost:5000',
    });
  }
  return url;
}

/** localhost, 127.0.0.0/8 and ::1: the hosts docker also lets fall back to plain HTTP. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1';
  return false;
}

function mergeSettings(file: RegistrySettings, explicit: RegistrySettings | undefined): RegistrySettings {
  const out: RegistrySettings = { ...file };
  for (const [k, v] of Object.entries(explicit ?? {})) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/**
 * Does the server on host:port answer a TLS hello? true: yes; false: it answered in plain
 * HTTP; undefined: no answer either way (down, timeout), so nothing is learnt.
 */
function probeTls(hostname: string, port: number, timeoutMs = 3000): Promise<boolean | undefined> {
  const host = hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    // Only the handshake's first answer matters here, never the certificate: nothing is sent.
    const socket = tls.connect({ host, port, rejectUnauthorized: false, ...(isIP(host) ? {} : { servername: host }) });
    const done = (v: boolean | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.once('secureConnect', () => done(true));
    socket.once('error', (err) => done(PLAIN_HTTP_TLS_CODES.has(errnoCode(err) ?? '') ? false : undefined));
  });
}

async function chooseScheme(url: URL, settings: RegistrySettings): Promise<'http' | 'https'> {
  if (settings.plainHttp === true) return 'http';
  // An explicit choice, a remote host, or a proxy in between: https, and no guessing.
  if (settings.plainHttp === false || settings.proxy || !isLoopbackHost(url.hostname)) return 'https';
  const known = loopbackSchemes.get(url.host);
  if (known) return known;
  const speaksTls = await probeTls(url.hostname, Number(url.port || 443));
  if (speaksTls === undefined) return 'https';
  const scheme = speaksTls ? 'https' : 'http';
  loopbackSchemes.set(url.host, scheme);
  return scheme;
}

async function readPem(path: string, what: string, registry: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new KitError('TLS_CONFIG_INVALID', `cannot read the ${what} file ${path} configured for ${registry} (${errnoCode(err) ?? (err as Error).message})`, {
      hint: `fix the path in your flags or in ${registrySettingsPath()}`,
      cause: err,
    });
  }
}

async function tlsOptions(settings: RegistrySettings, registry: string): Promise<tls.ConnectionOptions> {
  const opts: tls.ConnectionOptions = {};
  if (settings.caCert) {
    // `ca` replaces Node's trust store; keep the public roots (a token realm is often on a
    // public host) and the NODE_EXTRA_CA_CERTS the user configured.
    const extra = process.env['NODE_EXTRA_CA_CERTS'];
    const extraPem = extra ? await readFile(extra, 'utf8').catch(() => undefined) : undefined;
    opts.ca = [...tls.rootCertificates, ...(extraPem ? [extraPem] : []), await readPem(settings.caCert, 'CA certificate', registry)];
  }
  if (settings.cert || settings.key) {
    if (!settings.cert || !settings.key) {
      throw new KitError('TLS_CONFIG_INVALID', `a client certificate for ${registry} needs both "cert" and "key"`, {
        hint: `set both in your flags or in ${registrySettingsPath()}`,
      });
    }
    opts.cert = await readPem(settings.cert, 'client certificate', registry);
    opts.key = await readPem(settings.key, 'client key', registry);
  }
  // Verification is on unless the user turned it off for this registry.
  if (settings.tlsVerify === false) opts.rejectUnauthorized = false;
  return opts;
}

function hasProxyEnv(): boolean {
  return ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'].some((k) => !!process.env[k]);
}

async function createDispatcher(url: URL, settings: RegistrySettings, registry: string): Promise<Dispatcher> {
  const connect = await tlsOptions(settings, registry);
  const pool = { keepAliveTimeout: 10_000, connect };
  if (settings.proxy) {
    let proxy: URL;
    try {
      proxy = new URL(settings.proxy);
    } catch {
      proxy = new URL('invalid:');
    }
    if (proxy.protocol !== 'http:' && proxy.protocol !== 'https:') {
      throw new KitError('SETTINGS_INVALID', `the proxy for ${registry} must be an http(s) URL`, {
        hint: `fix "proxy" in your flags or in ${registrySettingsPath()}`,
      });
    }
    return new ProxyAgent({ ...pool, uri: proxy.href, requestTls: connect });
  }
  // Like Go's ProxyFromEnvironment, a loopback registry is never sent through an env proxy.
  if (hasProxyEnv() && !isLoopbackHost(url.hostname)) return new EnvHttpProxyAgent({ ...pool, requestTls: connect });
  return new Agent(pool);
}

/**
 * A client for one registry (host[:port] as in references; `docker.io` is served by
 * https://registry-1.docker.io). Settings are `opts.settings` over the per-registry settings
 * file. A loopback registry with no plainHttp setting is probed: if it answers TLS in plain
 * HTTP, http is used (docker's localhost rule), and remembered for the process.
 */
export async function createRegistryClient(registry: string, opts: CreateRegistryClientOptions = {}): Promise<RegistryClient> {
  const url = parseRegistry(registry);
  const settings = mergeSettings(await loadRegistrySettings(registry), opts.settings);
  const scheme = await chooseScheme(url, settings);
  const dispatcher = await createDispatcher(url, settings, registry);
  return new HttpRegistryClient({
    registry,
    baseUrl: `${scheme}://${url.host}`,
    dispatcher,
    credentials: opts.credentials ?? findCredential,
    userAgent: opts.userAgent ?? `kit/${KIT_VERSION}`,
    maxAttempts: opts.maxAttempts ?? 5,
    baseDelayMs: opts.baseDelayMs ?? 200,
  });
}
