import { KitError, ExitCode } from '../errors.js';

/**
 * A password from stdin (`--password-stdin`, trailing newline dropped) or typed at a prompt
 * with echo off. Never from argv, where every user of the machine could read it.
 */
export async function readSecret(opts: { fromStdin: boolean; prompt: string }): Promise<string> {
  if (opts.fromStdin) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
    const s = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
    if (s === '') throw new KitError('PASSWORD_EMPTY', 'no password on stdin', { hint: 'pipe the password or token into the command', exitCode: ExitCode.usage });
    return s;
  }
  if (!process.stdin.isTTY) {
    throw new KitError('PASSWORD_REQUIRED', 'no password given and stdin is not a terminal', {
      hint: 'pipe it in with --password-stdin (never pass a password as an argument)',
      exitCode: ExitCode.usage,
    });
  }
  return promptHidden(opts.prompt);
}

function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let value = '';
    const onData = (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') {
          cleanup();
          return reject(new KitError('CANCELLED', 'cancelled', { exitCode: 130 }));
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    const cleanup = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    const done = () => {
      cleanup();
      resolve(value);
    };
    stdin.on('data', onData);
  });
}
