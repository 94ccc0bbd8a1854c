import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { chmod, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A key file that is missing, unreadable or not an ed25519 key. */
export class KeyError extends Error {
  override name = 'KeyError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The control plane's signing key. */
export interface SigningKey {
  readonly keyId: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** Public keys an agent trusts, by key id. */
export type TrustedKeys = ReadonlyMap<string, KeyObject>;

/** File name stem of the first control-plane key (`keys init`): `control-plane.key` / `.pub`. */
export const FIRST_KEY_FILE = 'control-plane';

/** Directory holding the control plane's key pair under SLOTFLOW_HOME. */
export function keysDir(home: string): string {
  return join(home, 'keys');
}

/** Key id: first 16 hex digits of the sha256 of the raw 32-byte public key. */
export function keyIdOf(publicKey: KeyObject): string {
  const raw = publicKey.export({ format: 'jwk' }).x;
  if (typeof raw !== 'string') throw new KeyError('expected an ed25519 public key');
  return createHash('sha256').update(Buffer.from(raw, 'base64url')).digest('hex').slice(0, 16);
}

/** Throws a KeyError naming `file` unless `key` is an ed25519 key. */
export function assertEd25519(key: KeyObject, file: string): void {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new KeyError(`${file}: expected an ed25519 key, got ${key.asymmetricKeyType ?? 'a symmetric key'}`);
  }
}

/** Writes a file all at once (temp file, then rename) with the given mode. */
export async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data, { mode, flag: 'wx' });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

/** Parses one PEM public key. */
export function parsePublicKey(pem: string, source: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new KeyError(`${source}: expected a PEM (SPKI) ed25519 public key`, { cause: err });
  }
  assertEd25519(key, source);
  return key;
}

/** Loads every `*.pub` in a directory as a trusted control-plane key. */
export async function loadTrustedKeys(dir: string): Promise<Map<string, KeyObject>> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.pub')).sort();
  } catch (err) {
    throw new KeyError(
      `cannot read trusted keys from ${dir}; copy the control plane's control-plane.pub there`,
      { cause: err },
    );
  }
  const keys = new Map<string, KeyObject>();
  for (const name of names) {
    const key = parsePublicKey(await readFile(join(dir, name), 'utf8'), join(dir, name));
    keys.set(keyIdOf(key), key);
  }
  if (keys.size === 0) {
    throw new KeyError(`no *.pub key in ${dir}; copy the control plane's control-plane.pub there`);
  }
  return keys;
}

/** Builds a trusted-key map from public keys. */
export function trustKeys(...keys: KeyObject[]): Map<string, KeyObject> {
  return new Map(keys.map((k) => [keyIdOf(k), k]));
}
