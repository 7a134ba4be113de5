import type { Command } from 'commander';
import { ExitCode, KitError } from '../../errors.js';
import { collect, oneOf } from '../options.js';
import { formatBytes, printJson, printLine } from '../output.js';
import { createProgress } from '../progress.js';
import { addRemoteOptions, remoteSettings, type RemoteFlags } from '../remote-options.js';
import { createTransferProgress } from '../transfer-progress.js';

interface PackFlags extends RemoteFlags {
  push?: boolean;
  tag?: string[];
  file?: string;
  format: 'modelpack' | 'kitops';
  layerFormat: 'raw' | 'tar';
  compression: 'none' | 'gzip' | 'gzip-fastest' | 'zstd';
  json?: boolean;
  provenance?: boolean;
}

export function registerPack(program: Command): void {
  addRemoteOptions(program
    .command('pack')
    .argument('[dir]', 'project folder (the context)', '.')
    .description('pack a project folder into an artifact in the local store')
    .option('-t, --tag <ref...>', 'reference(s) to tag the artifact with (repeat, or separate with commas)', collect)
    .option('-f, --file <kitfile>', "Kitfile to use ('-' reads stdin; default: Kitfile, kitfile or .kitfile in the folder)")
    .option('--format <format>', 'artifact format: modelpack or kitops', oneOf(['modelpack', 'kitops'] as const), 'modelpack')
    .option('--layer-format <format>', 'single files as raw layers or tar layers', oneOf(['raw', 'tar'] as const), 'raw')
    .option('--compression <alg>', 'compression of tar layers: none, gzip, gzip-fastest, zstd', oneOf(['none', 'gzip', 'gzip-fastest', 'zstd'] as const), 'none')
    .option('--push', 'push straight to the registry of each tag instead of storing locally')
    .option('--provenance', 'attach an SLSA provenance and a CycloneDX ML-BOM to the artifact, as referrers')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  kit pack . -t registry.example.com/team/model:1.0\n  kit pack . -t registry.example.com/team/model:1.0 --push'), { transfer: true })
    .action(async (dir: string, o: PackFlags, cmd: Command) => {
      const verbose = cmd.optsWithGlobals().verbose === true;
      const base = {
        contextDir: dir,
        ...(o.file !== undefined ? { kitfile: o.file } : {}),
        tags: o.tag ?? [],
        format: o.format,
        layerFormat: o.layerFormat,
        compression: o.compression,
      };
      if (o.push && o.provenance) {
        throw new KitError('FLAGS_CONFLICT', '--provenance cannot be used with --push yet', { hint: 'pack with --provenance, then `kit push` (it carries the referrers along)', exitCode: ExitCode.usage });
      }
      if (o.push) {
        const { packAndPush } = await import('../../transfer/pack-push.js');
        const hashing = await createProgress('Hashing', verbose);
        const transfer = createTransferProgress('Pushing', o.json ? 'none' : o.progress);
        try {
          const r = await packAndPush({ ...base, onEvent: hashing.onEvent }, { settings: remoteSettings(o), ...(o.concurrency ? { concurrency: o.concurrency } : {}), onEvent: (e) => (hashing.stop(), transfer.onEvent(e)) });
          transfer.stop();
          if (o.json) return printJson(r);
          for (const p of r.pushed) printLine(`Pushed ${p.destination} (${p.copied} blobs uploaded, ${formatBytes(p.bytes)}; ${p.skipped} already there)`);
          printLine(`Digest: ${r.digest} (${r.layers.length} layers, ${r.format})`);
          if (r.parent) printLine(builtOnLine(r.parent));
          return;
        } finally {
          hashing.stop();
          transfer.stop();
        }
      }
      const [{ pack, StoreSink }, { LocalStore }] = await Promise.all([import('../../artifact/pack.js'), import('../../store/local-store.js')]);
      const store = await LocalStore.open();
      // Supply chain: --provenance attaches the SLSA provenance and the ML-BOM once the artifact is packed.
      const { attachSupplyChain } = o.provenance ? await import('../../supplychain/attach.js') : { attachSupplyChain: undefined };
      let attached: { provenance: string; mlbom: string } | undefined;
      const progress = await createProgress('Packing', verbose);
      const sink = new StoreSink(store);
      try {
        const r = await pack({
          contextDir: dir,
          ...(o.file !== undefined ? { kitfile: o.file } : {}),
          tags: o.tag ?? [],
          format: o.format,
          layerFormat: o.layerFormat,
          compression: o.compression,
          sink,
          settings: remoteSettings(o),
          onEvent: progress.onEvent,
          ...(attachSupplyChain ? { onPacked: async (p) => void (attached = await attachSupplyChain(store, p)) } : {}),
        });
        progress.stop();
        if (o.json) return printJson({ ...r, unchangedFiles: sink.unchangedFiles, ...(attached ? { supplyChain: attached } : {}) });
        const bytes = r.layers.reduce((n, l) => n + l.size, 0);
        for (const t of r.tags) printLine(`Packed ${t}`);
        printLine(`Digest: ${r.digest} (${r.layers.length} layers, ${formatBytes(bytes)}, ${r.format})`);
        if (r.parent) printLine(builtOnLine(r.parent));
        if (sink.unchangedFiles > 0) printLine(`${sink.unchangedFiles} files unchanged since they were last packed: not read again`);
        if (attached) printLine(`Attached SLSA provenance ${attached.provenance} and CycloneDX ML-BOM ${attached.mlbom}`);
      } finally {
        progress.stop();
      }
    });
}

/** model.path named another artifact: say which, and that its layers were listed, not copied. */
function builtOnLine(p: { reference: string; digest: string; layers: number; bytes: number; ancestors: string[] }): string {
  const chain = p.ancestors.length > 1 ? `, itself built on ${p.ancestors.slice(1).join(' -> ')}` : '';
  return `Built on ${p.reference} (${p.digest}${chain}): its ${p.layers} model layers (${formatBytes(p.bytes)}) are listed, not copied`;
}
