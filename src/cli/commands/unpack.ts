import type { Command } from 'commander';
import { resolve } from 'node:path';
import { KitError, ExitCode } from '../../errors.js';
import { isDigest } from '../../oci/digest.js';
import { formatReference, parseReferenceWithDefaultTag } from '../../oci/reference.js';
import { repeat } from '../options.js';
import { printJson, printLine } from '../output.js';
import { createProgress } from '../progress.js';
import { addRemoteOptions, remoteSettings, type RemoteFlags } from '../remote-options.js';

interface UnpackFlags extends RemoteFlags {
  remote?: boolean;
  local?: boolean;
  dir: string;
  filter?: string[];
  overwrite?: boolean;
  ignoreExisting?: boolean;
  json?: boolean;
  verifyKey?: string[];
  verifyBlobs?: boolean;
}

export function registerUnpack(program: Command): void {
  addRemoteOptions(program
    .command('unpack')
    .argument('<ref>', 'artifact reference or digest')
    .description('restore the files and the Kitfile of an artifact into a folder')
    .option('-d, --dir <dir>', 'folder to unpack into', '.')
    .option('--filter <filter>', 'only some parts: model, datasets[:name], code, docs, prompts, kitfile (repeatable)', repeat)
    .option('-o, --overwrite', 'replace files that already exist')
    .option('--ignore-existing', 'keep files that already exist and skip them')
    .option('-r, --remote', 'read from the registry even when the local store has the artifact')
    .option('--local', 'read from the local store only')
    .option('--json', 'print the result as JSON')
    .option('--verify-blobs', "re-hash the local store's blobs while restoring them (the store verified them when storing them)")
    .option('--verify-key <file>', 'refuse the artifact unless it carries a valid signature for this public key (cosign.pub); repeatable', repeat)
    .addHelpText('after', '\nUnpacks from the local store, or straight from the registry (nothing stored) when the store\ndoes not have the artifact; only the layers the filters select are downloaded.\n\nExamples:\n  kit unpack registry.example.com/team/model:1.0 -d ./model\n  kit unpack team/model:1.0 -d /models --filter model --filter datasets:training'))
    .action(async (ref: string, o: UnpackFlags, cmd: Command) => {
      if (o.overwrite && o.ignoreExisting) {
        throw new KitError('FLAGS_CONFLICT', '--overwrite and --ignore-existing cannot be used together', { exitCode: ExitCode.usage });
      }
      const verbose = cmd.optsWithGlobals().verbose === true;
      const [{ unpack }, { openSource }] = await Promise.all([import('../../artifact/unpack.js'), import('../../artifact/source.js')]);
      const mode = o.remote ? 'remote' : o.local ? 'local' : 'local-first';
      const settings = remoteSettings(o);
      const src = await openSource(ref, mode, settings);
      // An artifact built on another one (model.path naming it): its parents are read the same
      // way, and layers the source lacks come from the local store or the parents' registries.
      const { parentOpener, parentBlobSources } = await import('../../artifact/source.js');
      const parents = {
        open: parentOpener(mode, settings),
        blobSources: (refs: string[]) => parentBlobSources(refs, mode, settings, { withStore: src.where !== 'local' }),
        ...(mode === 'local' ? { hint: "--local reads the local store only: unpack without it to fetch the parent's layers from its registry" } : {}),
      };
      const progress = await createProgress('Unpacking', verbose);
      try {
        const r = await unpack({
          source: src.target,
          ref: src.ref,
          name: displayName(ref),
          dest: resolve(o.dir),
          filters: o.filter ?? [],
          existing: o.overwrite ? 'overwrite' : o.ignoreExisting ? 'skip' : 'error',
          onEvent: progress.onEvent,
          parents,
          ...(o.verifyBlobs ? { rehashStoredBlobs: true } : {}),
          ...(o.verifyKey ? { verify: await (await import('../../sign/verify.js')).signatureGate(o.verifyKey, ref) } : {}),
        });
        progress.stop();
        if (o.json) return printJson(r);
        printLine(`Unpacked ${r.layers.length} layers${r.kitfile ? ' and the Kitfile' : ''} to ${r.dest}${src.where === 'remote' ? ' (from the registry)' : ''}`);
      } finally {
        progress.stop();
      }
    });
}

/** The reference in full (`registry/repo:tag`) for messages, or as typed when it does not parse. */
function displayName(ref: string): string {
  if (isDigest(ref)) return ref;
  try {
    return formatReference(parseReferenceWithDefaultTag(ref));
  } catch {
    return ref;
  }
}
