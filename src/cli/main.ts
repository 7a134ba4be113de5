import { Command, CommanderError } from 'commander';
import { reportError } from './report-error.js';
import { ExitCode } from '../errors.js';
import { KIT_VERSION } from '../version.js';
import { registerInit } from './commands/init.js';
import { registerPack } from './commands/pack.js';
import { registerImport } from './commands/import.js';
import { registerList } from './commands/list.js';
import { registerInspect } from './commands/inspect.js';
import { registerInfo } from './commands/info.js';
import { registerTag } from './commands/tag.js';
import { registerRemove } from './commands/remove.js';
import { registerUnpack } from './commands/unpack.js';
import { registerVersion } from './commands/version.js';
import { registerPush } from './commands/push.js';
import { registerDiff } from './commands/diff.js';
import { registerPull } from './commands/pull.js';
import { registerLogin, registerLogout } from './commands/login.js';
import { registerKey } from './commands/key.js';
import { registerSign } from './commands/sign.js';
import { registerVerify } from './commands/verify.js';
import { registerAttest } from './commands/attest.js';
import { registerReferrers } from './commands/referrers.js';
import { registerStore } from './commands/store.js';

/**
 * The program. Command files only declare flags; each action imports the module that does
 * the work when it runs, so `kit --version` loads next to nothing.
 */
export function buildProgram(): Command {
  const program = new Command('kit')
    .description('Pack ML projects into OCI artifacts (ModelPack or KitOps ModelKit) and move them through OCI registries')
    .version(KIT_VERSION, '--version', 'print the version')
    .option('-v, --verbose', 'show details, and stack traces on errors')
    .showSuggestionAfterError(true)
    .configureHelp({ sortSubcommands: false })
    // Before registering: commander copies this setting into subcommands when they are created,
    // so a usage error in any subcommand exits 2 instead of commander's own exit(1).
    .exitOverride();
  for (const register of [registerInit, registerPack, registerImport, registerList, registerInspect, registerInfo, registerTag, registerRemove, registerUnpack, registerPush, registerPull, registerLogin, registerLogout, registerStore, registerDiff, registerKey, registerSign, registerVerify, registerAttest, registerReferrers, registerVersion]) {
    register(program);
  }
  return program;
}

export async function main(argv: string[]): Promise<void> {
  // `kit list | head -1`: a reader that stops early is not an error (and no stack trace).
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw err;
    });
  }
  const program = buildProgram();
  const verbose = argv.includes('-v') || argv.includes('--verbose');
  // Node ends a process whose event loop has nothing left to wait for, with exit code 0, even
  // when a command is still waiting on a promise nothing will settle (a bug): that must never
  // pass for success (a CI step would go on with half a pull).
  let finished = false;
  process.once('beforeExit', () => {
    if (finished) return;
    process.stderr.write('kit: internal error: the command stopped before it finished (nothing left to wait for)\nhint: run it again; if it happens again, please report it with the output of -v\n');
    process.exitCode = ExitCode.internal;
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed its message (usage errors, --help, --version).
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    process.exitCode = reportError(err, verbose);
  } finally {
    finished = true;
  }
}
