import { join } from 'node:path';
import { pack, type PackOptions, type PackResult } from '../artifact/pack.js';
import { StagedArtifact } from '../artifact/staging.js';
import { formatReference, parseReference } from '../oci/reference.js';
import { openRepository } from '../registry/open.js';
import { kitHome } from '../store/paths.js';
import { copy } from './copy.js';
import { parentBlobSources } from '../artifact/source.js';
import { FallbackTarget } from '../oci/fallback-target.js';
import { parentMounts } from './parent-blobs.js';
import type { TransferOptions, TransferSummary } from './remote-ops.js';

/**
 * `kit pack --push`: build the artifact and copy it straight to the registry under every tag,
 * without putting it in the local store. Blobs the registry has are never uploaded, and the
 * weight files are read for upload only when it lacks them.
 */
export async function packAndPush(opts: Omit<PackOptions, 'sink'>, transfer: TransferOptions = {}): Promise<PackResult & { pushed: TransferSummary[] }> {
  const staged = await StagedArtifact.create(join(kitHome(), 'tmp'));
  try {
    const result = await pack({ ...opts, sink: staged, ...(transfer.settings ? { settings: transfer.settings } : {}) });
    const pushed: TransferSummary[] = [];
    // Built on another artifact: its layers are mounted from the parents' repositories on the
    // same registry, else read from the local store or the parents' registries; never staged.
    const parents = result.parent?.ancestors ?? [];
    const source = parents.length > 0 ? new FallbackTarget(staged, parentBlobSources(parents, 'local-first', transfer.settings), result.tags[0]!) : staged;
    for (const ref of result.tags) {
      const { repo, ref: parsed } = await openRepository(ref, transfer.settings);
      const mountFrom = parentMounts(parents, parsed);
      const r = await copy(source, repo, result.digest, parsed.tag, {
        ...(transfer.concurrency ? { concurrency: transfer.concurrency } : {}),
        ...(transfer.onEvent ? { onEvent: transfer.onEvent } : {}),
        ...(mountFrom.length > 0 ? { mountFrom } : {}),
      });
      pushed.push({ source: 'pack', destination: formatReference(parseReference(ref)), digest: r.descriptor.digest, blobs: r.blobs, copied: r.copied, skipped: r.skipped, mounted: r.mounted, bytes: r.bytes });
    }
    return { ...result, pushed };
  } finally {
    await staged.dispose();
  }
}
