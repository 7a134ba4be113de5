import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

/**
 * Where kit keeps its data: `$KIT_HOME`, else `$XDG_DATA_HOME/kit`, else `~/.local/share/kit`.
 * An empty or relative `XDG_DATA_HOME` is ignored, as the XDG base-directory spec requires.
 */
export function kitHome(): string {
  const explicit = process.env['KIT_HOME'];
  if (explicit) return resolve(explicit);
  const xdg = process.env['XDG_DATA_HOME'];
  if (xdg && isAbsolute(xdg)) return join(xdg, 'kit');
  return join(homedir(), '.local', 'share', 'kit');
}

/** The local OCI image layout that holds every artifact kit has packed or pulled. */
export function defaultStoreRoot(): string {
  return join(kitHome(), 'store');
}
