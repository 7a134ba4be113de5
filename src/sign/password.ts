import { ExitCode, KitError } from '../errors.js';
import type { PasswordSource } from './keys.js';

/**
 * The password of a private key, as cosign finds it: `KIT_PASSWORD`, else `COSIGN_PASSWORD`
 * (either may be set to the empty string: cosign allows keys without a password), else typed at
 * a prompt when stdin is a terminal, else the first line of stdin. Never from argv.
 */

export interface PasswordOptions {
  /** Asks on the terminal with echo off (the CLI's prompt). */
  prompt: (question: string) => Promise<string>;
  /** Ask twice and compare (for a new key). */
  confirm?: boolean;
  env?: NodeJS.ProcessEnv;
  stdin?: NodeJS.ReadStream;
}

export function passwordFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env['KIT_PASSWORD'] ?? env['COSIGN_PASSWORD'];
}

/** A PasswordSource that asks at most once and remembers the answer. */
export function passwordSource(opts: PasswordOptions): PasswordSource {
  let answer: Promise<string> | undefined;
  return () => (answer ??= resolvePassword(opts));
}

async function resolvePassword(opts: PasswordOptions): Promise<string> {
  const fromEnv = passwordFromEnv(opts.env);
  if (fromEnv !== undefined) return fromEnv;
  const stdin = opts.stdin ?? process.stdin;
  if (stdin.isTTY) {
    const first = await opts.prompt('Enter password for private key: ');
    if (opts.confirm) {
      const again = await opts.prompt('Enter password for private key again: ');
      if (again !== first) throw new KitError('PASSWORD_MISMATCH', 'the passwords do not match', { exitCode: ExitCode.usage });
    }
    return first;
  }
  return readFirstLine(stdin);
}

async function readFirstLine(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    chunks.push(buf);
    total += buf.length;
    if (total > 64 * 1024) break;
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '' && chunks.length === 0) {
    throw new KitError('PASSWORD_REQUIRED', 'no password for the private key: KIT_PASSWORD is not set, stdin is not a terminal and is empty', {
      hint: 'set KIT_PASSWORD (or COSIGN_PASSWORD; empty for a key without a password), or pipe the password in',
      exitCode: ExitCode.usage,
    });
  }
  return text.split(/\r?\n/, 1)[0] ?? '';
}
