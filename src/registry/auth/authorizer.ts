import type { Credential, CredentialSource } from '../credentials/types.js';
import { bearerOf, parseChallenges } from './challenge.js';
import { cleanScopes, splitScopeParam } from './scope.js';
import { TokenCache } from './token-cache.js';
import { fetchToken, validateRealm, type IssuedToken, type Send } from './token.js';

/** An Authorization header value and what it stands for. */
export interface Authorization {
  header: string;
  /** The token cache key (scope set) it was issued for; `basic` for Basic auth. */
  key: string;
  /** Obtained just now for this request: if the server refuses it, asking again is pointless. */
  fresh: boolean;
}

export interface AuthorizerOptions {
  /** host[:port] as in references; what credentials are looked up by. */
  registry: string;
  /** The registry's base URL: the only origin any Authorization header is sent to. */
  origin: URL;
  credentials: CredentialSource;
  /** Sends token requests (no auth added, no redirects followed). */
  send: Send;
}

type Scheme = { kind: 'basic' } | { kind: 'bearer'; realm: URL; service?: string };

export function sameOrigin(a: URL, b: URL): boolean {
  // URL.origin normalises scheme and host case and drops default ports, so
  // https://r.io and https://R.IO:443 compare equal while http://r.io does not.
  return a.origin === b.origin;
}

export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

/**
 * Authentication for one registry, in the way of containerd's docker authorizer and oras-go's
 * auth client: learn the scheme from the first 401 challenge, then authorize later requests up
 * front (no 401 round trip per request), with bearer tokens cached per scope set.
 *
 * It only ever authorizes requests to the registry's own origin. Credentials are looked up
 * once, on first need.
 */
export class Authorizer {
  readonly #opts: AuthorizerOptions;
  readonly #tokens = new TokenCache();
  #scheme: Scheme | undefined;
  #credential: Promise<Credential | undefined> | undefined;

  constructor(opts: AuthorizerOptions) {
    this.#opts = opts;
  }

  /** Is `url` on the registry's origin (the only place Authorization may go)? */
  appliesTo(url: URL): boolean {
    return sameOrigin(url, this.#opts.origin);
  }

  #getCredential(): Promise<Credential | undefined> {
    if (!this.#credential) {
      this.#credential = this.#opts.credentials(this.#opts.registry);
      // A failed lookup (a credential helper that crashed) may succeed next time.
      this.#credential.catch(() => (this.#credential = undefined));
    }
    return this.#credential;
  }

  async #bearer(scheme: Extract<Scheme, { kind: 'bearer' }>, scopes: string[], signal?: AbortSignal): Promise<Authorization> {
    const clean = cleanScopes(scopes);
    const cred = await this.#getCredential();
    // A registry token is the bearer token itself (docker's `registrytoken`): nothing to fetch.
    if (cred?.registryToken) return { header: `Bearer ${cred.registryToken}`, key: clean.join(' '), fresh: true };
    const token: IssuedToken = await this.#tokens.obtain(clean, () =>
      fetchToken(this.#opts.send, {
        registry: this.#opts.registry,
        realm: scheme.realm,
        ...(scheme.service !== undefined ? { service: scheme.service } : {}),
        scopes: clean,
        ...(cred ? { credential: cred } : {}),
        ...(signal ? { signal } : {}),
      }),
    );
    return { header: `Bearer ${token.value}`, key: clean.join(' '), fresh: true };
  }

  async #basic(): Promise<Authorization | undefined> {
    const cred = await this.#getCredential();
    if (cred?.username === undefined || cred.password === undefined) return undefined;
    return { header: basicAuthorization(cred.username, cred.password), key: 'basic', fresh: true };
  }

  /**
   * The Authorization to send with a request before any challenge, once the registry's scheme
   * is known; undefined when none is known yet or `url` is on another origin.
   */
  async authorize(url: URL, scopes: string[], signal?: AbortSignal): Promise<Authorization | undefined> {
    const scheme = this.#scheme;
    if (!scheme || !this.appliesTo(url)) return undefined;
    if (scheme.kind === 'basic') {
      const basic = await this.#basic();
      return basic && { ...basic, fresh: false };
    }
    const cached = this.#tokens.find(scopes);
    if (cached) return { header: `Bearer ${cached.token.value}`, key: cached.key, fresh: false };
    return this.#bearer(scheme, scopes, signal);
  }

  /**
   * Answers a 401: parses the challenge, obtains credentials for the union of the request's
   * scopes and any the server asks for (`error="insufficient_scope", scope="..."`), and returns
   * the Authorization to retry with, or undefined when there is nothing new to try (no
   * credentials, unknown scheme, or fresh credentials for the same scopes were just refused).
   */
  async challenge(url: URL, scopes: string[], wwwAuthenticate: string, attempted: Authorization | undefined, signal?: AbortSignal): Promise<Authorization | undefined> {
    // A 401 from another origin (a redirect target, an upload URL elsewhere) is not ours to answer:
    // answering would hand our credentials to whoever that is.
    if (!this.appliesTo(url)) return undefined;
    const challenges = parseChallenges(wwwAuthenticate);
    const bearerChallenge = challenges.find((c) => c.scheme === 'bearer');
    if (bearerChallenge) {
      const b = bearerOf(bearerChallenge)!;
      const realm = validateRealm(b.realm, this.#opts.origin, this.#opts.registry);
      const scheme: Scheme = { kind: 'bearer', realm, ...(b.service !== undefined ? { service: b.service } : {}) };
      this.#scheme = scheme;
      const wanted = cleanScopes([...scopes, ...splitScopeParam(b.scope)]);
      const key = wanted.join(' ');
      if (attempted) {
        if (attempted.fresh && attempted.key === key) return undefined;
        if (attempted.header.startsWith('Bearer ')) this.#tokens.invalidate(attempted.key, attempted.header.slice('Bearer '.length));
      }
      const cached = this.#tokens.find(wanted);
      if (cached && `Bearer ${cached.token.value}` !== attempted?.header) {
        return { header: `Bearer ${cached.token.value}`, key: cached.key, fresh: false };
      }
      const next = await this.#bearer(scheme, wanted, signal);
      return next.header === attempted?.header && attempted.fresh ? undefined : next;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      const basic = await this.#basic();
      if (!basic || basic.header === attempted?.header) return undefined;
      this.#scheme = { kind: 'basic' };
      return basic;
    }
    return undefined;
  }
}
