import { formatBytes } from './output.js';

/**
 * Draws the progress events of pack and unpack. On a terminal: one spinner line updated at
 * most 10 times a second. Elsewhere (CI logs, pipes): one line per finished layer with -v,
 * nothing otherwise.
 */
export interface LayerEvent {
  type: string;
  index?: number;
  total?: number;
  path?: string;
  bytes?: number;
  digest?: string;
  size?: number;
  existed?: boolean;
  layers?: number;
}

export interface Progress {
  onEvent: (e: LayerEvent) => void;
  stop: () => void;
}

export async function createProgress(verb: string, verbose: boolean): Promise<Progress> {
  const tty = process.stderr.isTTY === true && !process.env.CI;
  if (!tty) {
    return {
      onEvent: (e) => {
        if (verbose && e.type === 'layer-done') process.stderr.write(`${verb} ${e.path}${e.digest ? ` ${e.digest}` : ''}${e.existed ? ' (already in store)' : ''}\n`);
      },
      stop: () => undefined,
    };
  }
  const { default: ora } = await import('ora');
  const spinner = ora({ stream: process.stderr }).start(`${verb}...`);
  let total = 0;
  // Unpack restores several raw layers at once: the line shows the first one still running.
  const active = new Map<number, { path: string; bytes: number; done: number }>();
  let last = 0;
  return {
    onEvent: (e) => {
      const index = e.index ?? 0;
      if (e.type === 'plan') total = e.layers ?? 0;
      if (e.type === 'layer-start') {
        total = e.total ?? total;
        active.set(index, { path: e.path ?? '', bytes: e.bytes ?? 0, done: 0 });
      }
      if (e.type === 'layer-progress') {
        const layer = active.get(index);
        if (layer) layer.done += e.bytes ?? 0;
      }
      if (e.type === 'layer-done') active.delete(index);
      const now = Date.now();
      if (e.type === 'layer-progress' && now - last < 100) return;
      last = now;
      const first = [...active.entries()].sort((a, b) => a[0] - b[0])[0];
      if (!first) return;
      const [at, current] = first;
      const pct = current.bytes > 0 ? ` ${Math.min(100, Math.floor((current.done / current.bytes) * 100))}%` : '';
      const more = active.size > 1 ? ` (+${active.size - 1} more)` : '';
      spinner.text = `${verb} [${at + 1}/${total}] ${current.path}${pct} of ${formatBytes(current.bytes)}${more}`;
    },
    stop: () => spinner.stop(),
  };
}
