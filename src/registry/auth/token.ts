import { KitError } from '../../errors.js';
import { displayUrl, oneLine } from '../errors.js';
import type { RegistryResponse } from '../types.js';
import type { Credential } from '../credentials/types.js';
import { redact } from '../credentials/redact.js';

/** A request the authorizer needs sent as is: no auth added, no redirect followed. */
export interface PlainRequest {
  method: 'GET' | 'POST';
  url: URL;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}

export type Send = (req: PlainRequest) => Promise<RegistryResponse>;

export interface IssuedToken {
  value: string;
  /** Epoch ms after which the token is not used any more (a safety margin before its expiry). */
  expiresAt: number;
}

export interface TokenRequest {
  /** For messages: the registry the token is for. */
  registry: string;
  realm: URL;
  service?: string;
  scopes: string[];
  credential?: Credential;
  signal?: AbortSignal;
}

/** The OAuth2 client id kit presents (the docker CLI says "docker", oras-go "oras-go"). */
export const CLIENT_ID = 'kit';
/** Distribution's token spec: without `expires_in`, a token lasts 60 seconds. */
const DEFAULT_EXPIRES_IN = 60;
/** A token response is a few KiB; anything larger is not a token response. */
const MAX_TOKEN_RESPONSE = 1024 * 1024;

/**
 * Checks a realm from a challenge before any credential goes there: it must be an http(s) URL
 * (never `file:` or another scheme), carry no user info, and not downgrade an https registry to
 * plain http (that would send the password in clear text).
 */
export function validateRealm(realm: string, registryOrigin: URL, registry: string): URL {
  const fail = (why: string): never => {
    throw new KitError('AUTH_REALM_INVALID', `${registry} sent a token realm kit will not use: ${why}`, {
      hint: 'the registry (or something between you and it) is misconfigured or hostile; no credentials were sent',
    });
  };
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    return fail(`${JSON.stringify(oneLine(realm, 100))} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail(`scheme ${JSON.stringify(url.protocol)} is not http or https`);
  if (url.username !== '' || url.password !== '') fail('the URL carries user info');
  if (registryOrigin.protocol === 'https:' && url.protocol === 'http:') fail(`${displayUrl(url)} is plain http while the registry uses https`);
  return url;
}

function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

/** Tokens go into an HTTP header: refuse anything that could break out of it. */
function isHeaderSafe(token: string): boolean {
  return /^[\x21-\x7e]+$/.test(token);
}

async function failure(res: RegistryResponse, req: TokenRequest): Promise<KitError> {
  let detail = '';
  try {
    const text = await res.text(64 * 1024);
    try {
      const json = JSON.parse(text) as Record<string, unknown>;
      const errors = Array.isArray(json['errors']) ? (json['errors'] as Array<Record<string, unknown>>) : [];
      const first = errors[0];
      if (first) detail = `${String(first['code'] ?? '')}: ${String(first['message'] ?? '')}`;
      else if (typeof json['error'] === 'string') {
        // OAuth2 error form: {error, error_description}
        detail = `${json['error']}${typeof json['error_description'] === 'string' ? `: ${json['error_description']}` : ''}`;
      } else if (typeof json['details'] === 'string') detail = json['details'];
    } catch {
      detail = text;
    }
  } catch {
    /* body unreadable: the status says enough */
  }
  detail = oneLine(redact(detail, req.credential), 200);
  const where = `token server ${displayUrl(req.realm)}`;
  const message = `authentication to ${req.registry} failed: ${where} answered ${res.status}${detail ? ` (${detail})` : ''}`;
  if (res.status === 401 || res.status === 403) {
    const anonymous = !req.credential;
    return new KitError(res.status === 401 ? 'UNAUTHORIZED' : 'DENIED', message, {
      hint: anonymous
        ? `log in with \`kit login ${req.registry}\``
        : `the stored credentials for ${req.registry} were refused; log in again with \`kit login ${req.registry}\``,
    });
  }
  return new KitError('AUTH_TOKEN_FAILED', message, {
    hint: res.status >= 500 ? 'the token server had an error; try again later' : 'the registry\'s token service refused the request',
  });
}

/**
 * Gets a bearer token from the realm named by a challenge.
 *
 * - identity token (OAuth2 refresh token): POST form grant_type=refresh_token, as docker does.
 * - username and password: GET realm?service=..&scope=.. with Basic auth (distribution's token
 *   protocol, which every token server implements; the OAuth2 password grant is not).
 * - nothing: the same GET anonymously (public repositories on Docker Hub, GHCR, ...).
 */
export async function fetchToken(send: Send, req: TokenRequest): Promise<IssuedToken> {
  const cred = req.credential;
  const url = new URL(req.realm.href);
  const headers: Record<string, string> = { accept: 'application/json' };
  let res: RegistryResponse;
  const requestedAt = Date.now();

  if (cred?.identityToken) {
    const form = new URLSearchParams();
    form.set('grant_type', 'refresh_token');
    form.set('refresh_token', cred.identityToken);
    if (req.service !== undefined) form.set('service', req.service);
    // OAuth2 carries scopes as one space-separated parameter.
    if (req.scopes.length > 0) form.set('scope', req.scopes.join(' '));
    form.set('client_id', CLIENT_ID);
    headers['content-type'] = 'application/x-www-form-urlencoded';
    res = await send({ method: 'POST', url, headers, body: form.toString(), ...(req.signal ? { signal: req.signal } : {}) });
  } else {
    if (req.service !== undefined) url.searchParams.set('service', req.service);
    for (const s of req.scopes) url.searchParams.append('scope', s);
    if (cred?.username !== undefined && cred.password !== undefined) headers['authorization'] = basicHeader(cred.username, cred.password);
    res = await send({ method: 'GET', url, headers, ...(req.signal ? { signal: req.signal } : {}) });
  }

  if (res.status !== 200) throw await failure(res, req);

  const invalid = (why: string): KitError =>
    new KitError('AUTH_TOKEN_INVALID', `authentication to ${req.registry} failed: token server ${displayUrl(req.realm)} ${why}`, {
      hint: 'the registry\'s token service answered with something kit cannot use; report it to the registry operator',
    });
  let body: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(await res.text(MAX_TOKEN_RESPONSE));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    body = parsed as Record<string, unknown>;
  } catch (err) {
    if (err instanceof KitError) throw invalid('sent an oversized response');
    throw invalid('did not answer with a JSON object');
  }
  // Distribution's spec: `token`, with `access_token` as an OAuth2-compatible alias.
  const token = [body['access_token'], body['token']].find((t): t is string => typeof t === 'string' && t !== '');
  if (token === undefined) throw invalid('answered without a token');
  if (!isHeaderSafe(token)) throw invalid('sent a token with characters not allowed in an HTTP header');

  const expiresIn = typeof body['expires_in'] === 'number' && body['expires_in'] > 0 ? body['expires_in'] : DEFAULT_EXPIRES_IN;
  // Stop using a token a little before it expires, so it does not die in flight.
  const margin = Math.min(30, expiresIn / 10);
  return { value: token, expiresAt: requestedAt + (expiresIn - margin) * 1000 };
}
