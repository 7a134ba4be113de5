import type { Command } from 'commander';
import { printJson, printLine } from '../output.js';
import { readSecret } from '../secret-input.js';

export function registerKey(program: Command): void {
  const key = program.command('key').description('signing keys in cosign format (ECDSA P-256, encrypted private key)');
  key
    .command('generate')
    .description('write a new key pair: <prefix>.key (encrypted with a password) and <prefix>.pub')
    .option('--output-key-prefix <prefix>', 'file name prefix of the key pair', 'cosign')
    .option('--force', 'replace existing key files')
    .option('--json', 'print the file names as JSON')
    .addHelpText(
      'after',
      '\nThe password comes from KIT_PASSWORD (or COSIGN_PASSWORD; empty for no password), else a prompt,\nelse the first line of stdin. The files are what `cosign generate-key-pair` writes; cosign reads them.\n\nExample:\n  KIT_PASSWORD=... kit key generate --output-key-prefix release',
    )
    .action(async (o: { outputKeyPrefix: string; force?: boolean; json?: boolean }) => {
      const [{ writeKeyPair }, { passwordSource }] = await Promise.all([import('../../sign/keyfiles.js'), import('../../sign/password.js')]);
      const password = passwordSource({ prompt: (q) => readSecret({ fromStdin: false, prompt: q }), confirm: true });
      const r = await writeKeyPair(o.outputKeyPrefix, password, { force: o.force === true });
      if (o.json) return printJson(r);
      printLine(`Private key written to ${r.privateKey}`);
      printLine(`Public key written to ${r.publicKey}`);
    });
}
