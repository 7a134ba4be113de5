import type { Credential } from './types.js';

/**
 * Masks every secret of `cred` found in `text`. Messages built from what a server or a helper
 * said go through this before they reach an error: a server may echo what it was sent.
 */
export function redact(text: string, cred: Credential | undefined): string {
  if (!cred) return text;
  let out = text;
  const secrets = [cred.password, cred.identityToken, cred.registryToken]
    .filter((s): s is string => typeof s === 'string' && s.length >= 4)
    .sort((a, b) => b.length - a.length);
  for (const s of secrets) {
    out = out.split(s).join('***');
    // The Basic form of the credential is a secret too.
    if (cred.username !== undefined && s === cred.password) {
      const basic = Buffer.from(`${cred.username}:${s}`).toString('base64');
      out = out.split(basic).join('***');
    }
  }
  return out;
}
