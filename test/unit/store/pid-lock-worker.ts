// Test worker for pid-lock.test.ts: waits until the given moment, tries the lock once, prints
// "got" or "busy", and (when it got it) holds it until killed, like a downloader would.
import { tryPidLock } from '../../../src/store/pid-lock.js';

const [path, startAt] = process.argv.slice(2) as [string, string];
await new Promise((r) => setTimeout(r, Math.max(0, Number(startAt) - Date.now())));
const release = await tryPidLock(path);
process.stdout.write(release ? 'got\n' : 'busy\n');
if (release) setInterval(() => undefined, 1000);
