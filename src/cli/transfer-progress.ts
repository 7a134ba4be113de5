import type { CopyEvent } from '../transfer/copy.js';
import { formatBytes } from './output.js';

/**
 * Draws transfer progress. auto: on a terminal, a bar per active blob and a total with
 * throughput, redrawn in place; off a terminal the same as plain. plain: a line per finished
 * blob and a total every few seconds. none: nothing.
 */
export interface TransferProgress {
  onEvent: (e: CopyEvent) => void;
  stop: () => void;
}

export function createTransferProgress(verb: string, mode: 'auto' | 'plain' | 'none' = 'auto'): TransferProgress {
  if (mode === 'none') return { onEvent: () => undefined, stop: () => undefined };
  const tty = mode === 'auto' && process.stderr.isTTY === true && !process.env.CI;
  const start = Date.now();
  let totalBytes = 0;
  let doneBytes = 0;
  let blobs = 0;
  let finished = 0;
  const active = new Map<string, { title: string; size: number; done: number }>();
  let drawn = 0;
  let lastPlain = start;

  const rate = () => {
    const s = (Date.now() - start) / 1000;
    return s > 0 ? `${formatBytes(doneBytes / s)}/s` : '';
  };
  const bar = (done: number, size: number, width = 24) => {
    const f = size > 0 ? Math.min(1, done / size) : 1;
    const n = Math.round(f * width);
    return `[${'='.repeat(n)}${' '.repeat(width - n)}] ${Math.floor(f * 100)
      .toString()
      .padStart(3)}%`;
  };
  const draw = () => {
    const lines = [...active.values()].map((a) => `  ${a.title.slice(0, 40).padEnd(40)} ${bar(a.done, a.size)} ${formatBytes(a.done)}/${formatBytes(a.size)}`);
    lines.push(`${verb} ${bar(doneBytes, totalBytes)} ${formatBytes(doneBytes)}/${formatBytes(totalBytes)} ${rate()} (${finished}/${blobs} blobs)`);
    let out = drawn > 0 ? `\x1b[${drawn}F` : '';
    out += lines.map((l) => `\x1b[2K${l}`).join('\n') + '\n';
    if (lines.length < drawn) out += '\x1b[J';
    process.stderr.write(out);
    drawn = lines.length;
  };
  let timer: NodeJS.Timeout | undefined;
  if (tty) timer = setInterval(draw, 200);

  return {
    onEvent: (e) => {
      switch (e.type) {
        case 'plan':
          totalBytes += e.bytes;
          blobs += e.blobs;
          break;
        case 'blob-start':
          active.set(e.digest, { title: e.title ?? `${e.digest.slice(7, 19)} ${e.mediaType.split('.').slice(-2).join('.')}`, size: e.size, done: 0 });
          break;
        case 'blob-progress': {
          const a = active.get(e.digest);
          if (a) a.done += e.bytes;
          doneBytes += e.bytes;
          if (!tty && Date.now() - lastPlain > 5000) {
            lastPlain = Date.now();
            process.stderr.write(`${verb}: ${formatBytes(doneBytes)}/${formatBytes(totalBytes)} ${rate()} (${finished}/${blobs} blobs)\n`);
          }
          break;
        }
        case 'blob-done': {
          const a = active.get(e.digest);
          active.delete(e.digest);
          finished++;
          // Skipped, mounted or resumed bytes never flowed through here: count them now.
          doneBytes += Math.max(0, e.size - (a?.done ?? 0));
          if (!tty) process.stderr.write(`${verb}: ${a?.title ?? e.digest} ${e.how}${e.resumedFrom ? ` (resumed at ${formatBytes(e.resumedFrom)})` : ''} ${formatBytes(e.size)}\n`);
          break;
        }
        case 'manifest':
          break;
      }
    },
    stop: () => {
      if (timer) {
        clearInterval(timer);
        timer = undefined;
        draw();
      }
    },
  };
}
