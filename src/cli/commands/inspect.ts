import type { Command } from 'commander';
import { printJson } from '../output.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .argument('<ref>', 'artifact reference or digest')
    .description('print the digest, manifest and config of an artifact as JSON')
    .addHelpText('after', '\nExample:\n  kit inspect registry.example.com/team/model:1.0')
    .action(async (ref: string) => {
      const [{ loadArtifact }, { storeRef }, { LocalStore }] = await Promise.all([
        import('../../artifact/read.js'),
        import('../../artifact/local.js'),
        import('../../store/local-store.js'),
      ]);
      const a = await loadArtifact(await LocalStore.open(), storeRef(ref));
      printJson({ reference: storeRef(ref), digest: a.descriptor.digest, format: a.format, manifest: a.manifest, config: a.config });
    });
}
