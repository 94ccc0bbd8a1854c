import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import {
  KeyError,
  REVOKED_DIR,
  keyIdOf,
  keysDir,
  loadSigningKey,
  loadTrustedKeys,
  parsePublicKey,
  type TrustedKeys,
} from '../signing/index.ts';

/** Which control-plane keys a reader needs. */
export interface KeySetOptions {
  /**
   * Also the retired keys (`keys/revoked/*.pub`): what reads the log from the start needs them,
   * since decisions they signed before the log retired them stay valid. What judges a signature
   * made now (a certificate pinned into a plan) does not.
   */
  readonly retired?: boolean;
}

/**
 * The control-plane keys that sign enrolments, as the control plane itself trusts them: every
 * `*.pub` under `<home>/keys` and the public half of its signing key (and, with `retired`, the
 * keys it revoked). Throws KeyError when there is neither (run `slotflow keys init`).
 */
export async function controlPlaneTrustedKeys(
  home: string,
  options: KeySetOptions = {},
): Promise<TrustedKeys> {
  const keys = new Map(await loadTrustedKeys(keysDir(home)).catch(() => new Map<string, KeyObject>()));
  try {
    const own = await loadSigningKey(home);
    keys.set(own.keyId, own.publicKey);
  } catch (err) {
    if (keys.size === 0) throw err;
  }
  if (keys.size === 0)
    throw new KeyError(`no control-plane key under ${keysDir(home)}; run 'slotflow keys init'`);
  if (options.retired)
    for (const [id, key] of readPublicKeys(join(keysDir(home), REVOKED_DIR))) keys.set(id, key);
  return keys;
}

/** Every readable `*.pub` in `dir` (none when it does not exist); unreadable files are skipped. */
function readPublicKeys(dir: string): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.pub'));
  } catch {
    return keys;
  }
  for (const name of names) {
    try {
      const key = parsePublicKey(readFileSync(join(dir, name), 'utf8'), join(dir, name));
      keys.set(keyIdOf(key), key);
    } catch {
      // A half-written or foreign file: the next look finds it complete, or never trusts it.
    }
  }
  return keys;
}

/** How often a miss may send a live key set back to the disk. */
const REFRESH_EVERY_MS = 1_000;

/**
 * The control-plane keys of a long-running process (the worker): starts as
 * `controlPlaneTrustedKeys` and, when asked for a key it does not hold, reads `<home>/keys` again
 * (at most once a second), so a key `keys rotate` adds is trusted without a restart. Keys are
 * never dropped: a key revoked since is still needed to read what it signed before (the log's
 * ControlPlaneKeyRetired says from where on it is refused), and when `retired` is off the set
 * only misses keys revoked before it was made.
 */
export async function liveControlPlaneKeys(home: string, options: KeySetOptions = {}): Promise<TrustedKeys> {
  const keys = new Map(await controlPlaneTrustedKeys(home, options));
  let lastLook = Date.now();
  const refresh = (): void => {
    if (Date.now() - lastLook < REFRESH_EVERY_MS) return;
    lastLook = Date.now();
    const dirs = [keysDir(home), ...(options.retired ? [join(keysDir(home), REVOKED_DIR)] : [])];
    for (const dir of dirs) for (const [id, key] of readPublicKeys(dir)) keys.set(id, key);
  };
  const live: TrustedKeys = {
    get(keyId: string) {
      if (!keys.has(keyId)) refresh();
      return keys.get(keyId);
    },
    has(keyId: string) {
      if (!keys.has(keyId)) refresh();
      return keys.has(keyId);
    },
    get size() {
      return keys.size;
    },
    forEach: (fn, thisArg) => keys.forEach((v, k) => fn.call(thisArg, v, k, live)),
    entries: () => keys.entries(),
    keys: () => keys.keys(),
    values: () => keys.values(),
    [Symbol.iterator]: () => keys[Symbol.iterator](),
  };
  return live;
}
