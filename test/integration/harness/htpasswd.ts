/**
 * htpasswd files for distribution's `auth: htpasswd` backend.
 *
 * distribution 2.8 only accepts bcrypt entries (it hands the hash to golang.org/x/crypto/bcrypt,
 * whose parser takes any minor version letter after `$2`, so `$2a$`, `$2b$` and `$2y$` all work).
 * We write `$2y$`, the form `htpasswd -B` produces and the registry docs show; bcryptjs emits
 * `$2b$`, which is the same algorithm with a different label, so only the prefix is swapped.
 */
import bcrypt from 'bcryptjs';
import { writeFile } from 'node:fs/promises';

/**
 * Cost 5: well above Go's minimum of 4, yet cheap, because the registry re-checks the bcrypt hash
 * on every Basic-authenticated request and the default cost of 10 would slow every test call.
 */
const COST = 5;

/** Write `user:$2y$...` lines, one a user. Names with `:` or line breaks cannot be represented. */
export async function writeHtpasswd(path: string, users: Record<string, string>): Promise<void> {
  const lines = Object.entries(users).map(([user, password]) => {
    if (/[:\r\n]/.test(user) || user === '') throw new Error(`htpasswd cannot hold the user name ${JSON.stringify(user)}`);
    const hash = bcrypt.hashSync(password, COST).replace(/^\$2[ab]\$/, '$2y$');
    return `${user}:${hash}`;
  });
  await writeFile(path, lines.join('\n') + '\n', { mode: 0o600 });
}
