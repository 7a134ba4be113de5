import { KitError } from '../errors.js';

/**
 * Blobs a process found in the store are not protected until its tag is written: a `kit remove`
 * or `kit store gc` running meanwhile may delete them, and the store then refuses the tag with
 * BLOB_MISSING rather than point at nothing. Doing the work again writes the missing blobs anew
 * (what is still there is skipped), so a few attempts settle any such race.
 */
export async function retryWhenBlobsVanish<T>(work: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (!(err instanceof KitError && err.code === 'BLOB_MISSING') || attempt >= attempts) throw err;
    }
  }
}
