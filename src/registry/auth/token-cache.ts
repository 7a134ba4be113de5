import { cleanScopes, coversScopes, scopeKey } from './scope.js';
import type { IssuedToken } from './token.js';

interface Entry {
  scopes: string[];
  token: IssuedToken;
}

/**
 * Bearer tokens of one registry, keyed by their (cleaned, sorted) scope set. A request may use
 * any unexpired token whose scopes cover its own, so a `pull,push` token obtained for an upload
 * also serves the HEAD requests around it. Concurrent requests for the same scope set share one
 * token fetch instead of each asking the token server.
 */
export class TokenCache {
  readonly #entries = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<IssuedToken>>();

  constructor(private readonly now: () => number = Date.now) {}

  /** An unexpired token for `scopes`: the exact set first, else any set that covers it. */
  find(scopes: string[]): { key: string; token: IssuedToken } | undefined {
    const key = scopeKey(scopes);
    const now = this.now();
    const exact = this.#entries.get(key);
    if (exact && exact.token.expiresAt > now) return { key, token: exact.token };
    for (const [k, e] of this.#entries) {
      if (e.token.expiresAt <= now) {
        this.#entries.delete(k);
        continue;
      }
      if (coversScopes(e.scopes, scopes)) return { key: k, token: e.token };
    }
    return undefined;
  }

  /** Fetches (once, however many callers ask at the same time) and stores a token for `scopes`. */
  obtain(scopes: string[], fetch: () => Promise<IssuedToken>): Promise<IssuedToken> {
    const clean = cleanScopes(scopes);
    const key = clean.join(' ');
    const pending = this.#inflight.get(key);
    if (pending) return pending;
    const p = fetch()
      .then((token) => {
        this.#entries.set(key, { scopes: clean, token });
        return token;
      })
      .finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  /** Forgets the token stored under `key` if it is `value` (the one a server just refused). */
  invalidate(key: string, value: string): void {
    const e = this.#entries.get(key);
    if (e && e.token.value === value) this.#entries.delete(key);
  }

  get size(): number {
    return this.#entries.size;
  }
}
