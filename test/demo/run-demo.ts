/**
 * `npm run demo`: the main job on the bundled example, through the real CLI binary, in a
 * throw-away store: pack -> list -> inspect -> info -> unpack, then check that the unpacked
 * tree matches the project (contents and modes). When a registry can be started here (the
 * Debian package docker-registry), it also pushes to it, pulls into a second, empty store and
 * unpacks from there.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXAMPLE, runKit } from '../helpers/cli.js';
import { diffTrees, exampleSkip, snapshotTree } from '../helpers/tree.js';
import { registryAvailable, startRegistry } from '../integration/harness/registry-server.js';

const REF = 'localhost:5000/example/sentiment:1.0';

async function step(title: string, args: string[], home: string): Promise<string> {
  process.stdout.write(`\n$ kit ${args.join(' ')}\n`);
  const r = await runKit(args, { home });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  if (r.code !== 0) throw new Error(`${title} failed with exit code ${r.code}`);
  return r.stdout;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'kit-demo-'));
  const home = join(work, 'kit-home');
  const out = join(work, 'unpacked');
  try {
    process.stdout.write(`kit demo: store in ${home}\n`);
    await step('pack', ['pack', EXAMPLE, '-t', REF], home);
    await step('list', ['list'], home);
    const inspect = JSON.parse(await step('inspect', ['inspect', REF], home)) as { manifest: { layers: unknown[] } };
    await step('info', ['info', REF, '--filter', '.model.name'], home);
    await step('unpack', ['unpack', REF, '-d', out], home);
    const diffs = diffTrees(await snapshotTree(EXAMPLE, exampleSkip), await snapshotTree(out));
    if (diffs.length > 0) throw new Error(`unpacked tree differs from the project:\n${diffs.join('\n')}`);
    process.stdout.write(`\nOK: ${inspect.manifest.layers.length} layers unpacked; the tree matches fixtures/example byte for byte, modes included.\n`);
    await registryRoundTrip(work, home, EXAMPLE);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function registryRoundTrip(work: string, home: string, project: string): Promise<void> {
  if (!registryAvailable()) {
    process.stdout.write('\n(docker-registry is not installed: skipping the push/pull part of the demo; apt-get install docker-registry)\n');
    return;
  }
  const reg = await startRegistry();
  try {
    const remote = `${reg.host}/example/sentiment:1.0`;
    process.stdout.write(`\nA local registry is running at ${reg.url}\n`);
    await step('tag', ['tag', REF, remote], home);
    await step('push', ['push', remote, '--progress', 'plain'], home);
    await step('list --remote', ['list', '--remote', `${reg.host}/example/sentiment`], home);
    const home2 = join(work, 'second-machine');
    await step('pull', ['pull', remote, '--progress', 'plain'], home2);
    const out = join(work, 'pulled');
    await step('unpack', ['unpack', remote, '-d', out], home2);
    const diffs = diffTrees(await snapshotTree(project, exampleSkip), await snapshotTree(out));
    if (diffs.length > 0) throw new Error(`tree pulled from the registry differs:\n${diffs.join('\n')}`);
    process.stdout.write('\nOK: pushed, pulled into an empty store and unpacked; the tree matches again.\n');
  } finally {
    await reg.stop();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`demo failed: ${(e as Error).message}\n`);
  process.exit(1);
});
