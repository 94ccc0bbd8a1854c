import { KeyError, keysDir, loadSigningKey, loadTrustedKeys, type TrustedKeys } from '../signing/index.ts';

/**
 * The control-plane keys that sign enrolments, as the control plane itself trusts them: every
 * `*.pub` under `<home>/keys` and the public half of its signing key. Throws KeyError when there is
 * neither (run `slotflow keys init`).
 */
export async function controlPlaneTrustedKeys(home: string): Promise<TrustedKeys> {
  const keys = new Map(await loadTrustedKeys(keysDir(home)).catch(() => new Map()));
  try {
    const own = await loadSigningKey(home);
    keys.set(own.keyId, own.publicKey);
  } catch (err) {
    if (keys.size === 0) throw err;
  }
  if (keys.size === 0)
    throw new KeyError(`no control-plane key under ${keysDir(home)}; run 'slotflow keys init'`);
  return keys;
}
