// Bundles the compiled CLI (dist/src, from tsc) into dist/bundle, which bin/kit runs.
//
// Why: every command starts cold somewhere (a CI step, an init container, a re-push after the
// page cache was dropped), and a cold start read ~200 files one by one (undici alone is 113):
// a re-push took 0.68-0.77 s from dist/src and 0.49-0.55 s from the bundle, an unpack's start
// 0.2-0.4 s less. Code splitting keeps the lazy imports lazy (push and pull still do not load
// the YAML parser). zstd-napi is a native addon and stays in node_modules.
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'bundle');
await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: [join(root, 'dist', 'src', 'cli', 'main.js')],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['zstd-napi'],
  // CommonJS dependencies (commander, proper-lockfile) call require() for Node's modules.
  banner: { js: "import { createRequire as __kitRequire } from 'node:module'; const require = __kitRequire(import.meta.url);" },
  logLevel: 'warning',
});
