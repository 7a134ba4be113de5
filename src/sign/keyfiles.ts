import { open, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ExitCode, KitError, errnoCode } from '../errors.js';
import { generateKeyPair, type PasswordSource } from './keys.js';

/** `kit key generate`: `<prefix>.key` (encrypted, mode 0600) and `<prefix>.pub`, as `cosign generate-key-pair` writes them. */

export interface WrittenKeyPair {
  privateKey: string;
  publicKey: string;
}

export async function writeKeyPair(prefix: string, password: PasswordSource, opts: { force?: boolean } = {}): Promise<WrittenKeyPair> {
  const privateKey = resolve(`${prefix}.key`);
  const publicKey = resolve(`${prefix}.pub`);
  const pair = await generateKeyPair(await password());
  const written: string[] = [];
  try {
    await writeNew(privateKey, pair.privatePem, 0o600, opts.force === true);
    written.push(privateKey);
    await writeNew(publicKey, pair.publicPem, 0o644, opts.force === true);
  } catch (err) {
    for (const p of written) await rm(p, { force: true });
    throw err;
  }
  return { privateKey, publicKey };
}

async function writeNew(path: string, text: string, mode: number, force: boolean): Promise<void> {
  let fh;
  try {
    fh = await open(path, force ? 'w' : 'wx', mode);
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') {
      throw new KitError('KEY_EXISTS', `${path} already exists`, { hint: 'choose another --output-key-prefix, or pass --force to replace it', exitCode: ExitCode.conflict });
    }
    throw err;
  }
  try {
    await fh.chmod(mode); // an existing file replaced with --force keeps no wider mode
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
