import { KitError } from '../../errors.js';

/**
 * One authentication challenge of a `WWW-Authenticate` header (RFC 7235 section 2.1):
 *
 *   challenge   = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *   auth-param  = token BWS "=" BWS ( token / quoted-string )
 *
 * The scheme and parameter names are case-insensitive, so they are kept lower-case here.
 */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
  token68?: string;
}

function isTchar(c: string): boolean {
  // tchar from RFC 7230 section 3.2.6: any VCHAR except delimiters.
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/.test(c);
}

function isToken68Char(c: string): boolean {
  return /^[A-Za-z0-9\-._~+/]$/.test(c);
}

class Parser {
  i = 0;
  constructor(readonly s: string) {}

  get done(): boolean {
    return this.i >= this.s.length;
  }

  cur(): string {
    return this.s[this.i] ?? '';
  }

  fail(why: string): never {
    // The header comes from the server and holds no secret of ours; a short excerpt helps debugging.
    const excerpt = this.s.length > 120 ? `${this.s.slice(0, 117)}...` : this.s;
    throw new KitError('AUTH_CHALLENGE_INVALID', `malformed WWW-Authenticate header from the registry: ${why} at position ${this.i} in ${JSON.stringify(excerpt)}`, {
      hint: 'the registry or a proxy in between sent an authentication challenge kit cannot read; report it to the registry operator',
    });
  }

  /** Optional white space: SP / HTAB. Returns how many characters were skipped. */
  ows(): number {
    const start = this.i;
    while (this.cur() === ' ' || this.cur() === '\t') this.i++;
    return this.i - start;
  }

  token(): string {
    const start = this.i;
    while (!this.done && isTchar(this.cur())) this.i++;
    return this.s.slice(start, this.i);
  }

  quoted(): string {
    this.i++; // opening quote
    let out = '';
    for (;;) {
      if (this.done) this.fail('unterminated quoted string');
      const c = this.cur();
      const code = c.charCodeAt(0);
      if (c === '"') {
        this.i++;
        return out;
      }
      if (c === '\\') {
        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ): the next character stands for itself.
        this.i++;
        if (this.done) this.fail('unterminated quoted string');
        const next = this.cur().charCodeAt(0);
        if (next !== 0x09 && (next < 0x20 || next === 0x7f)) this.fail('control character in quoted string');
        out += this.cur();
        this.i++;
        continue;
      }
      if (code !== 0x09 && (code < 0x20 || code === 0x7f)) this.fail('control character in quoted string');
      out += c;
      this.i++;
    }
  }

  /**
   * At a comma inside a challenge's parameter list: does a parameter (`name =`) follow, or
   * the next challenge (`Scheme ...`)? Looks ahead without consuming.
   */
  paramFollows(): boolean {
    const save = this.i;
    try {
      while (this.cur() === ',' || this.cur() === ' ' || this.cur() === '\t') this.i++;
      if (this.done) return false;
      if (this.token() === '') return false;
      this.ows();
      return this.cur() === '=';
    } finally {
      this.i = save;
    }
  }

  /** token68 followed by the end of the challenge, or undefined (position unchanged). */
  token68(): string | undefined {
    const save = this.i;
    while (!this.done && isToken68Char(this.cur())) this.i++;
    if (this.i === save) return undefined;
    while (this.cur() === '=') this.i++;
    const value = this.s.slice(save, this.i);
    this.ows();
    if (this.done || this.cur() === ',') return value;
    this.i = save;
    return undefined;
  }

  params(into: Record<string, string>): void {
    for (;;) {
      const name = this.token().toLowerCase();
      if (name === '') this.fail('expected a parameter name');
      this.ows();
      if (this.cur() !== '=') this.fail(`expected "=" after parameter ${JSON.stringify(name)}`);
      this.i++;
      this.ows();
      let value: string;
      if (this.cur() === '"') value = this.quoted();
      else {
        value = this.token();
        if (value === '') this.fail(`expected a value for parameter ${JSON.stringify(name)}`);
      }
      // RFC 7235: each parameter name occurs once per challenge. Two realms would leave us
      // guessing which one the server meant; refuse instead.
      if (Object.prototype.hasOwnProperty.call(into, name)) this.fail(`parameter ${JSON.stringify(name)} given twice`);
      // defineProperty, not assignment: a parameter called "__proto__" must stay plain data.
      Object.defineProperty(into, name, { value, enumerable: true, writable: true, configurable: true });
      this.ows();
      if (this.done) return;
      if (this.cur() !== ',') this.fail('expected "," between parameters');
      if (!this.paramFollows()) return; // the comma separates challenges; the caller moves on
      while (this.cur() === ',' || this.cur() === ' ' || this.cur() === '\t') this.i++;
    }
  }

  challenges(): Challenge[] {
    const out: Challenge[] = [];
    for (;;) {
      // The #rule allows empty list elements: ", , Basic realm=x".
      while (this.cur() === ',' || this.cur() === ' ' || this.cur() === '\t') this.i++;
      if (this.done) return out;
      const scheme = this.token();
      if (scheme === '') this.fail('expected an authentication scheme');
      const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
      out.push(challenge);
      const spaces = this.ows();
      if (this.done || this.cur() === ',') continue;
      if (spaces === 0) this.fail(`expected a space after scheme ${JSON.stringify(scheme)}`);
      const t68 = this.token68();
      if (t68 !== undefined) {
        challenge.token68 = t68;
        continue;
      }
      this.params(challenge.params);
    }
  }
}

/**
 * Parses every challenge of a `WWW-Authenticate` header value. Quoted strings may hold commas
 * and escaped characters; several challenges may share one header. An empty header gives [].
 * Throws KitError AUTH_CHALLENGE_INVALID on anything malformed.
 */
export function parseChallenges(header: string): Challenge[] {
  return new Parser(header).challenges();
}

/** The Bearer challenge's parameters as the token protocol names them. */
export interface BearerChallenge {
  realm: string;
  service?: string;
  /** Space-separated scopes the server asks for, as given. */
  scope?: string;
  error?: string;
}

export function bearerOf(challenge: Challenge): BearerChallenge | undefined {
  if (challenge.scheme !== 'bearer') return undefined;
  const p = challenge.params;
  const realm = p['realm'];
  if (realm === undefined || realm === '') {
    throw new KitError('AUTH_CHALLENGE_INVALID', 'the registry asked for a Bearer token without saying where to get it (no realm in WWW-Authenticate)', {
      hint: 'the registry is misconfigured; report it to its operator',
    });
  }
  const out: BearerChallenge = { realm };
  if (p['service'] !== undefined) out.service = p['service'];
  if (p['scope'] !== undefined) out.scope = p['scope'];
  if (p['error'] !== undefined) out.error = p['error'];
  return out;
}
