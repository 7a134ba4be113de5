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
  let current = { index: 0, path: '', bytes: 0, done: 0 };
  let last = 0;
  return {
    onEvent: (e) => {
      if (e.type === 'plan') total = e.layers ?? 0;
      if (e.type === 'layer-start') {
        total = e.total ?? total;
        current = { index: e.index ?? 0, path: e.path ?? '', bytes: e.bytes ?? 0, done: 0 };
      }
      if (e.type === 'layer-progress') current.done += e.bytes ?? 0;
      const now = Date.now();
      if (e.type === 'layer-progress' && now - last < 100) return;
      last = now;
      const pct = current.bytes > 0 ? ` ${Math.min(100, Math.floor((current.done / current.bytes) * 100))}%` : '';
      spinner.text = `${verb} [${current.index + 1}/${total}] ${current.path}${pct} of ${formatBytes(current.bytes)}`;
    },
    stop: () => spinner.stop(),
  };
}
