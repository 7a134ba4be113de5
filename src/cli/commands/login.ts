import type { Command } from 'commander';
import { KitError, ExitCode } from '../../errors.js';
import { printLine } from '../output.js';
import { addRemoteOptions, remoteSettings, type RemoteFlags } from '../remote-options.js';
import { readSecret } from '../secret-input.js';

export function registerLogin(program: Command): void {
  addRemoteOptions(
    program
      .command('login')
      .argument('<registry>', 'registry host[:port]')
      .description('check credentials with the registry and save them for later commands')
      .option('-u, --username <user>', 'user name')
      .option('--password-stdin', 'read the password (or token) from stdin')
      .addHelpText('after', '\nExamples:\n  echo "$TOKEN" | kit login ghcr.io -u me --password-stdin\n  kit login registry.example.com -u me        # prompts for the password'),
  ).action(async (registry: string, o: RemoteFlags & { username?: string; passwordStdin?: boolean }) => {
    if (!o.username) throw new KitError('USERNAME_REQUIRED', 'no user name given', { hint: 'pass -u USER', exitCode: ExitCode.usage });
    const password = await readSecret({ fromStdin: o.passwordStdin === true, prompt: `Password for ${o.username}@${registry}: ` });
    const { saveCredential, verifyLogin } = await import('../../registry/credentials/index.js');
    const cred = { username: o.username, password };
    await verifyLogin(registry, cred, remoteSettings(o));
    const path = await saveCredential(registry, cred);
    printLine(`Login succeeded; credentials saved in ${path}`);
  });
}

export function registerLogout(program: Command): void {
  program
    .command('logout')
    .argument('<registry>', 'registry host[:port]')
    .description("forget kit's saved credentials for a registry")
    .action(async (registry: string) => {
      const { removeCredential } = await import('../../registry/credentials/index.js');
      const removed = await removeCredential(registry);
      printLine(removed ? `Removed the credentials for ${registry}` : `No saved credentials for ${registry}`);
    });
}
