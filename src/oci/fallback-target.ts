import type { Readable } from 'node:stream';
import { ExitCode, KitError } from '../errors.js';
import type { Descriptor } from './descriptor.js';
import type { Target } from './target.js';

/** A place blobs may be read from, opened only when first needed (a registry login costs a round trip). */
export interface BlobSource {
  /** For messages: `local store`, `registry.example.com/team/base`. */
  name: string;
  open(): Promise<Target>;
}

/**
 * Reads each blob from the first of several targets that has it. An artifact built on another
 * one (model.path naming an artifact) lists its parent's layers without holding them: they are
 * read where the parent is (the local store, the parent's repository). Everything else, and
 * every write, is the primary target's.
 */
export class FallbackTarget implements Target {
  private readonly opened = new Map<BlobSource, Promise<Target | undefined>>();
  /** Why a source could not be asked, for the error that names the places tried. */
  private readonly failures = new Map<string, string>();

  constructor(
    readonly primary: Target,
    private readonly sources: BlobSource[],
    /** Names the artifact in the error when no source has a blob. */
    private readonly what: string,
    private readonly hint = 'the parent artifact it builds on is gone or out of reach: push or pull the parent again, or check your access to its registry',
  ) {}

  resolve(ref: string): Promise<Descriptor> {
    return this.primary.resolve(ref);
  }

  async exists(desc: Descriptor): Promise<boolean> {
    return (await this.holder(desc)) !== undefined;
  }

  async fetch(desc: Descriptor, opts?: { offset?: number }): Promise<Readable> {
    const t = await this.holder(desc);
    if (!t) {
      const tried = ['the source', ...this.sources.map((s) => (this.failures.has(s.name) ? `${s.name} (${this.failures.get(s.name)})` : s.name))];
      throw new KitError('NOT_FOUND', `blob ${desc.digest} of ${this.what} is in none of: ${tried.join(', ')}`, {
        hint: this.hint,
        exitCode: ExitCode.notFound,
      });
    }
    return t.fetch(desc, opts);
  }

  push(desc: Descriptor, content: Readable): Promise<void> {
    return this.primary.push(desc, content);
  }

  tag(desc: Descriptor, ref: string): Promise<void> {
    return this.primary.tag(desc, ref);
  }

  private async holder(desc: Descriptor): Promise<Target | undefined> {
    if (await this.primary.exists(desc)) return this.primary;
    for (const source of this.sources) {
      const t = await this.open(source);
      // A source that cannot be reached (no credentials there, registry down) is skipped: the
      // next may have the blob, and the error above names every place that was tried.
      const has = t ? await t.exists(desc).catch((err: unknown) => void this.failures.set(source.name, (err as Error).message)) : false;
      if (t && has === true) return t;
    }
    return undefined;
  }

  private open(source: BlobSource): Promise<Target | undefined> {
    let p = this.opened.get(source);
    if (!p) {
      p = source.open().catch((err: unknown) => void this.failures.set(source.name, (err as Error).message));
      this.opened.set(source, p);
    }
    return p;
  }
}
