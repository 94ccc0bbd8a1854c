import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
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

const PRIVATE_FILE = 'control-plane.key';
const PUBLIC_FILE = 'control-plane.pub';

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

function assertEd25519(key: KeyObject, file: string): void {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new KeyError(`${file}: expected an ed25519 key, got ${key.asymmetricKeyType ?? 'a symmetric key'}`);
  }
}

async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data, { mode, flag: 'wx' });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

/**
 * Creates the control plane's ed25519 key pair under `<home>/keys` (private key mode 0600).
 * Refuses to replace an existing key unless `force` is set: agents trust the old public key.
 */
export async function initKeys(
  home: string,
  { force = false } = {},
): Promise<{ keyId: string; privatePath: string; publicPath: string; created: boolean }> {
  const dir = keysDir(home);
  const privatePath = join(dir, PRIVATE_FILE);
  const publicPath = join(dir, PUBLIC_FILE);
  if (!force) {
    try {
      const existing = await loadSigningKey(home);
      return { keyId: existing.keyId, privatePath, publicPath, created: false };
    } catch (err) {
      if (!(err instanceof KeyError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT'))
        throw err;
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  await writeAtomic(privatePath, privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), 0o600);
  await writeAtomic(publicPath, publicKey.export({ format: 'pem', type: 'spki' }).toString(), 0o644);
  return { keyId: keyIdOf(publicKey), privatePath, publicPath, created: true };
}

/** Loads the control plane's signing key from `<home>/keys`. */
export async function loadSigningKey(home: string): Promise<SigningKey> {
  const file = join(keysDir(home), PRIVATE_FILE);
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    throw new KeyError(`cannot read the signing key ${file}; run 'slotflow keys init' or set SLOTFLOW_HOME`, {
      cause: err,
    });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    throw new KeyError(`${file}: expected a PEM (PKCS#8) ed25519 private key`, { cause: err });
  }
  assertEd25519(privateKey, file);
  const publicKey = createPublicKey(privateKey);
  return { keyId: keyIdOf(publicKey), privateKey, publicKey };
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
