import { spawn } from 'node:child_process';
import { KitError } from '../../errors.js';
import { oneLine } from '../errors.js';
import type { Credential } from './types.js';

/** Helpers may talk to a keychain or a cloud API; one that hangs must not hang kit. */
const HELPER_TIMEOUT_MS = 60_000;
const MAX_OUTPUT = 1024 * 1024;

interface HelperResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(program: string, serverUrl: string, timeoutMs: number): Promise<HelperResult | undefined> {
  return new Promise((resolve, reject) => {
    // No shell: the helper name is part of a program name, never of a command line.
    const child = spawn(program, ['get'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(() => reject(new KitError('CREDENTIAL_HELPER_FAILED', `the credential helper ${program} did not answer within ${timeoutMs / 1000} s`)));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < MAX_OUTPUT) stdout += d.toString('utf8');
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < MAX_OUTPUT) stderr += d.toString('utf8');
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      // Not installed: as if it had no credentials (a config copied from another machine
      // often names a helper that is not here; an anonymous pull should still work).
      if (err.code === 'ENOENT') finish(() => resolve(undefined));
      else finish(() => reject(new KitError('CREDENTIAL_HELPER_FAILED', `cannot run the credential helper ${program} (${err.code ?? err.message})`, { cause: err })));
    });
    child.on('close', (code) => finish(() => resolve({ code, stdout, stderr })));
    // A helper that exits without reading stdin closes the pipe under us; that is its answer.
    child.stdin.on('error', () => undefined);
    child.stdin.end(serverUrl);
  });
}

/**
 * Asks `docker-credential-<name> get` for the credential of `serverUrl` (the docker
 * credential-helpers protocol: server URL on stdin, `{"Username", "Secret"}` on stdout;
 * Username `<token>` means Secret is an identity token). undefined when the helper is not
 * installed or says "credentials not found".
 */
export async function helperGet(name: string, serverUrl: string, timeoutMs = HELPER_TIMEOUT_MS): Promise<Credential | undefined> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new KitError('CREDENTIAL_HELPER_FAILED', `invalid credential helper name ${JSON.stringify(oneLine(name, 60))} in the Docker config`, {
      hint: 'a helper name is the suffix of a docker-credential-<name> program, e.g. "desktop" or "ecr-login"',
    });
  }
  const program = `docker-credential-${name}`;
  const result = await run(program, serverUrl, timeoutMs);
  if (!result) return undefined;
  if (result.code !== 0) {
    if (/credentials not found/i.test(`${result.stdout}\n${result.stderr}`)) return undefined;
    // Quote stderr only: a broken helper may well have printed the credential on stdout
    // before failing, and nothing a helper writes there may reach a log.
    const said = result.stderr.trim();
    throw new KitError('CREDENTIAL_HELPER_FAILED', `the credential helper ${program} failed for ${serverUrl} (exit ${result.code}${said ? `: ${oneLine(said, 200)}` : ''})`, {
      hint: `check that ${program} works (\`echo ${serverUrl} | ${program} get\`), or log in with \`kit login\``,
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(result.stdout);
  } catch {
    // Do not quote stdout: it may hold the secret.
    throw new KitError('CREDENTIAL_HELPER_FAILED', `the credential helper ${program} answered something other than JSON for ${serverUrl}`);
  }
  const o = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  const username = typeof o['Username'] === 'string' ? o['Username'] : '';
  const secret = typeof o['Secret'] === 'string' ? o['Secret'] : '';
  if (secret === '') return undefined;
  if (username === '<token>') return { identityToken: secret };
  return { username, password: secret };
}
