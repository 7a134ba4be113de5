import type { Command } from 'commander';
import { collect, repeat } from '../options.js';
import { formatBytes, note, printJson, printLine } from '../output.js';
import { createProgress } from '../progress.js';
import { addRemoteOptions, remoteSettings, type RemoteFlags } from '../remote-options.js';
import { readSecret } from '../secret-input.js';
import { createTransferProgress } from '../transfer-progress.js';

interface ImportFlags extends RemoteFlags {
  revision?: string;
  tag?: string[];
  include?: string[];
  exclude?: string[];
  push?: boolean;
  token?: string;
  json?: boolean;
}

export function registerImport(program: Command): void {
  const cmd = addRemoteOptions(
    program
      .command('import')
      .argument('<repo>', 'Hugging Face repository: org/name, hf://org/name, hf://datasets/org/name or a Hub URL')
      .description('download a Hugging Face Hub repository at one commit and pack it as an artifact')
      .option('--revision <rev>', 'branch, tag or commit to import (default: main); resolved to a commit first')
      .option('-t, --tag <ref...>', 'reference(s) to tag the artifact with (default: hf.co/<org>/<name>:<commit>)', collect)
      .option('--include <glob>', 'import only matching files (repeatable; `*` matches across folders, `dir/` a folder)', repeat)
      .option('--exclude <glob>', 'leave out matching files (repeatable)', repeat)
      .option('--push', 'push straight to the registry of each tag instead of storing locally')
      .option('--token <token>', "Hugging Face token ('-' reads it from stdin; default: HF_TOKEN, HUGGING_FACE_HUB_TOKEN, then $HF_HOME/token)")
      .option('--json', 'print the result as JSON')
      .addHelpText(
        'after',
        [
          '',
          'Examples:',
          '  kit import Qwen/Qwen2.5-0.5B',
          '  kit import hf://datasets/stanfordnlp/imdb --revision main -t registry.example.com/data/imdb:1',
          "  kit import meta-llama/Llama-3.2-1B --include '*.safetensors' --include '*.json' -t registry.example.com/llm/llama:3.2-1b --push",
          '',
          'HF_ENDPOINT selects a mirror or self-hosted hub; HF_HUB_OFFLINE=1 imports from the caches without network.',
        ].join('\n'),
      ),
    { transfer: true },
  );
  // The shared flag also sets the download parallelism here.
  const concurrency = cmd.options.find((opt) => opt.long === '--concurrency');
  if (concurrency) concurrency.description = 'files downloaded at once (default 8), and blobs pushed at once with --push (default 4)';
  cmd.action(async (repo: string, o: ImportFlags, command: Command) => {
    const verbose = command.optsWithGlobals().verbose === true;
    const { importRepository } = await import('../../hf/import.js');
    const token = o.token === '-' ? await readSecret({ fromStdin: true, prompt: '' }) : o.token;
    const mode = o.json ? 'none' : (o.progress ?? 'auto');
    const downloads = createTransferProgress('Downloading', mode);
    const packing = await createProgress('Packing', verbose);
    const pushing = createTransferProgress('Pushing', mode);
    const stopAll = (): void => {
      downloads.stop();
      packing.stop();
      pushing.stop();
    };
    let phase: 'download' | 'pack' | 'push' = 'download';
    try {
      const r = await importRepository({
        repo,
        ...(o.revision !== undefined ? { revision: o.revision } : {}),
        ...(o.tag ? { tags: o.tag } : {}),
        ...(o.include ? { include: o.include } : {}),
        ...(o.exclude ? { exclude: o.exclude } : {}),
        ...(o.push ? { push: true } : {}),
        ...(token !== undefined ? { token } : {}),
        ...(o.concurrency ? { concurrency: o.concurrency } : {}),
        registry: remoteSettings(o),
        onEvent: (e) => {
          switch (e.type) {
            case 'resolved':
              if (mode !== 'none') note(`Importing ${e.repository} at ${e.commit} (${e.revision}${e.offline ? ', offline' : ''})`);
              break;
            case 'listed':
              if (mode !== 'none' && e.skipped > 0 && verbose) note(`${e.files} files selected, ${e.skipped} left out`);
              downloads.onEvent({ type: 'plan', blobs: e.files, bytes: e.bytes });
              break;
            case 'file-start':
              downloads.onEvent({ type: 'blob-start', digest: e.path, size: e.size, mediaType: '', title: e.path });
              break;
            case 'file-progress':
              downloads.onEvent({ type: 'blob-progress', digest: e.path, bytes: e.bytes });
              break;
            case 'file-restart':
              if (verbose) note(`${e.path}: ${e.reason}`);
              break;
            case 'file-done':
              downloads.onEvent({ type: 'blob-done', digest: e.path, size: e.size, how: e.how === 'downloaded' ? 'copied' : 'skipped', ...(e.resumedFrom ? { resumedFrom: e.resumedFrom } : {}) });
              break;
            case 'wait':
              if (mode !== 'none' || verbose) note(`Waiting ${Math.ceil(e.ms / 1000)} s: ${e.reason}`);
              break;
            case 'kitfile':
              break;
            case 'pack':
              if (phase === 'download') {
                downloads.stop();
                phase = 'pack';
              }
              packing.onEvent(e.event);
              break;
            case 'push':
              if (phase !== 'push') {
                packing.stop();
                phase = 'push';
              }
              pushing.onEvent(e.event);
              break;
          }
        },
      });
      stopAll();
      if (o.json) return printJson(r);
      const f = r.files;
      const how = [f.downloaded ? `${f.downloaded} downloaded` : '', f.cached ? `${f.cached} already downloaded` : '', f.linked ? `${f.linked} from the huggingface_hub cache` : ''].filter((s) => s !== '').join(', ');
      printLine(`Imported ${r.repoType === 'dataset' ? 'datasets/' : ''}${r.repository} at ${r.commit} (${f.count} files, ${formatBytes(f.bytes)}${how ? `: ${how}` : ''})`);
      if (r.pushed) for (const p of r.pushed) printLine(`Pushed ${p.destination} (${p.copied} blobs uploaded, ${formatBytes(p.bytes)}; ${p.skipped} already there)`);
      else for (const t of r.tags) printLine(`Packed ${t}`);
      const bytes = r.layers.reduce((n, l) => n + l.size, 0);
      printLine(`Digest: ${r.digest} (${r.layers.length} layers, ${formatBytes(bytes)}, ${r.format})`);
    } finally {
      stopAll();
    }
  });
}
