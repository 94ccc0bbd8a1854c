import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { KEYRING_VERSION, KeyringFile, describeIssues, type KeyringEntry } from '../schema/index.ts';
import {
  FIRST_KEY_FILE,
  KeyError,
  assertEd25519,
  keyIdOf,
  keysDir,
  writeAtomic,
  type SigningKey,
} from './keys.ts';

// The control plane's keyring: every key pair it made, by key id, and when each one signs. A
// rotation adds a key that takes over after an overlap (so agents learn it, from a command the old
// key signs, before anything is signed with it); a revocation retires a key for good.

/** The schedule of which key signs when, under `$SLOTFLOW_HOME/keys`. */
export const KEYRING_FILE = 'keyring.json';
/** Where the public keys of revoked keys go (out of the `*.pub` set new agents trust). */
export const REVOKED_DIR = 'revoked';

const EPOCH = new Date(0).toISOString();

/** The keyring does not allow the operation (revoking the key that signs now, an unknown key id, …). */
export class KeyringError extends Error {
  override name = 'KeyringError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Hands out the key that signs now; a long-running signer (the worker) sees rotations at once. */
export interface SigningKeySource {
  current(now?: Date): Promise<SigningKey>;
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';

async function readPrivateKey(file: string): Promise<SigningKey> {
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

/**
 * Reads the keyring. A home made before keyrings existed holds only `control-plane.key`: that is a
 * keyring of one key, signing since ever.
 */
export async function readKeyring(home: string): Promise<KeyringFile> {
  const file = join(keysDir(home), KEYRING_FILE);
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (!isMissing(err)) throw new KeyError(`cannot read the keyring ${file}`, { cause: err });
  }
  if (text === undefined) {
    const first = await readPrivateKey(join(keysDir(home), `${FIRST_KEY_FILE}.key`));
    return {
      v: KEYRING_VERSION,
      keys: [{ keyId: first.keyId, file: FIRST_KEY_FILE, createdAt: EPOCH, signsFrom: EPOCH }],
    };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new KeyError(`${file} is not JSON; restore it from a backup of SLOTFLOW_HOME`, { cause: err });
  }
  const parsed = KeyringFile.safeParse(raw);
  if (!parsed.success) {
    throw new KeyError(
      `${file} is not a valid keyring:\n  - ${describeIssues(parsed.error.issues, raw).join('\n  - ')}`,
    );
  }
  return parsed.data;
}

async function writeKeyring(home: string, ring: KeyringFile): Promise<void> {
  await writeAtomic(join(keysDir(home), KEYRING_FILE), `${JSON.stringify(ring, null, 2)}\n`, 0o644);
}

/** The key that signs at `now`: of the keys not revoked whose turn has come, the newest turn. */
export function signerAt(ring: KeyringFile, now: Date): KeyringEntry {
  let best: KeyringEntry | undefined;
  for (const entry of ring.keys) {
    if (entry.revokedAt !== undefined || Date.parse(entry.signsFrom) > now.getTime()) continue;
    if (!best || Date.parse(entry.signsFrom) >= Date.parse(best.signsFrom)) best = entry;
  }
  if (!best) {
    throw new KeyringError(
      `no key of the keyring signs at ${now.toISOString()} (all revoked or scheduled later); rotate to a new key with 'slotflow keys rotate --overlap 0'`,
    );
  }
  return best;
}

/** Loads one keyring entry's private key, checking it is the key the keyring says. */
async function loadEntry(home: string, entry: KeyringEntry): Promise<SigningKey> {
  const file = join(keysDir(home), `${entry.file}.key`);
  const key = await readPrivateKey(file);
  if (key.keyId !== entry.keyId) {
    throw new KeyError(
      `${file} holds key ${key.keyId}, the keyring expects ${entry.keyId}; restore the file`,
    );
  }
  return key;
}

/** Paths of a key pair in the keyring. */
export function keyPaths(
  home: string,
  entry: Pick<KeyringEntry, 'file'>,
): { privatePath: string; publicPath: string } {
  const dir = keysDir(home);
  return { privatePath: join(dir, `${entry.file}.key`), publicPath: join(dir, `${entry.file}.pub`) };
}

async function writeKeyPair(home: string, file: string): Promise<SigningKey> {
  await mkdir(keysDir(home), { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const paths = keyPaths(home, { file });
  await writeAtomic(paths.privatePath, privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), 0o600);
  await writeAtomic(paths.publicPath, publicKey.export({ format: 'pem', type: 'spki' }).toString(), 0o644);
  return { keyId: keyIdOf(publicKey), privateKey, publicKey };
}

/** Loads the key the control plane signs with now (per the keyring's schedule). */
export async function loadSigningKey(home: string, now = new Date()): Promise<SigningKey> {
  const ring = await readKeyring(home);
  return loadEntry(home, signerAt(ring, now));
}

/**
 * Creates the control plane's first ed25519 key pair under `<home>/keys` (private key mode 0600).
 * An existing keyring is kept unless `force` is set; replacing it strands every agent that trusts
 * its keys, so the CLI asks for an explicit override and points to `keys rotate` instead.
 */
export async function initKeys(
  home: string,
  { force = false } = {},
): Promise<{ keyId: string; privatePath: string; publicPath: string; created: boolean }> {
  let existing: KeyringFile | undefined;
  try {
    existing = await readKeyring(home);
  } catch (err) {
    if (!(err instanceof KeyError && isMissing(err.cause))) throw err;
  }
  if (existing && !force) {
    const signer = signerAt(existing, new Date());
    return { keyId: signer.keyId, ...keyPaths(home, signer), created: false };
  }
  if (existing) {
    for (const entry of existing.keys) {
      const paths = keyPaths(home, entry);
      await rm(paths.privatePath, { force: true });
      await rm(paths.publicPath, { force: true });
    }
    await rm(join(keysDir(home), KEYRING_FILE), { force: true });
  }
  const key = await writeKeyPair(home, FIRST_KEY_FILE);
  return { keyId: key.keyId, ...keyPaths(home, { file: FIRST_KEY_FILE }), created: true };
}

/** What a rotation made: the new key, when it takes over, and the key that announces it. */
export interface Rotation {
  /** The key signing now, which signs the announcement (agents trust it already). */
  readonly announcer: SigningKey;
  readonly created: KeyringEntry;
  readonly publicKeyPem: string;
  readonly privatePath: string;
  readonly publicPath: string;
}

/** A new key about to join the keyring, for the announcement. */
export type NewKey = Omit<Rotation, 'created'> & { readonly keyId: string };

/**
 * Adds a new key pair that signs from `overlapMs` after it joined the keyring; until then the
 * current key keeps signing, so agents can learn the new key first. `announce` (telling the
 * agents) runs before the key joins: if it fails, the new key is removed and nothing changed, so
 * no agent is left with a schedule it never heard of.
 */
export async function rotateKeys(
  home: string,
  opts: { overlapMs: number; now?: Date; announce?: (key: NewKey) => Promise<void> },
): Promise<Rotation> {
  const ring = await readKeyring(home);
  const announcer = await loadEntry(home, signerAt(ring, opts.now ?? new Date()));
  const fresh = generateKeyPairSync('ed25519');
  const keyId = keyIdOf(fresh.publicKey);
  const file = `${FIRST_KEY_FILE}-${keyId}`;
  const paths = keyPaths(home, { file });
  const publicKeyPem = fresh.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  await writeAtomic(
    paths.privatePath,
    fresh.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    0o600,
  );
  await writeAtomic(paths.publicPath, publicKeyPem, 0o644);
  try {
    await opts.announce?.({ announcer, keyId, publicKeyPem, ...paths });
  } catch (err) {
    await rm(paths.privatePath, { force: true });
    await rm(paths.publicPath, { force: true });
    throw err;
  }
  const joined = opts.now ?? new Date();
  const created: KeyringEntry = {
    keyId,
    file,
    createdAt: joined.toISOString(),
    signsFrom: new Date(joined.getTime() + opts.overlapMs).toISOString(),
  };
  await writeKeyring(home, { v: KEYRING_VERSION, keys: [...ring.keys, created] });
  return { announcer, created, publicKeyPem, ...paths };
}

/** What a revocation did, and the key that signs the news of it. */
export interface Revocation {
  readonly revoked: KeyringEntry;
  /** A key that is still trusted and signs now. */
  readonly signer: SigningKey;
  /** It was revoked before (the announcement is sent again). */
  readonly already: boolean;
}

/**
 * Retires a key: marked revoked in the keyring (it never signs again), its private key deleted,
 * its public key moved to `keys/revoked/` (out of the `*.pub` set new agents trust). Refuses the
 * key that signs now: rotate first and revoke it once its successor signs.
 */
export async function revokeKey(home: string, keyId: string, now = new Date()): Promise<Revocation> {
  const ring = await readKeyring(home);
  const entry = ring.keys.find((k) => k.keyId === keyId);
  if (!entry) {
    throw new KeyringError(
      `no key ${keyId} in the keyring; its keys are ${ring.keys.map((k) => k.keyId).join(', ')} ('slotflow keys list')`,
    );
  }
  const signing = signerAt(ring, now);
  if (entry.revokedAt === undefined && signing.keyId === keyId) {
    const next = ring.keys
      .filter((k) => k.revokedAt === undefined && Date.parse(k.signsFrom) > now.getTime())
      .sort((a, b) => Date.parse(a.signsFrom) - Date.parse(b.signsFrom))[0];
    throw new KeyringError(
      next
        ? `key ${keyId} signs until ${next.signsFrom}, when key ${next.keyId} takes over; revoke it after that`
        : `key ${keyId} is the key that signs now; run 'slotflow keys rotate' first and revoke it once the new key signs`,
    );
  }
  const already = entry.revokedAt !== undefined;
  const revoked: KeyringEntry = already ? entry : { ...entry, revokedAt: now.toISOString() };
  if (!already) {
    await writeKeyring(home, { ...ring, keys: ring.keys.map((k) => (k.keyId === keyId ? revoked : k)) });
  }
  const paths = keyPaths(home, entry);
  await rm(paths.privatePath, { force: true });
  const dir = join(keysDir(home), REVOKED_DIR);
  await mkdir(dir, { recursive: true });
  await rename(paths.publicPath, join(dir, `${entry.file}.pub`)).catch((err: unknown) => {
    if (!isMissing(err)) throw err;
  });
  return { revoked, signer: await loadEntry(home, signing), already };
}

/**
 * The signing key per the keyring, re-read whenever the keyring (or the first key) changes on
 * disk, so a worker picks up `keys rotate` and `keys revoke` without a restart.
 */
export function keyringSigner(home: string): SigningKeySource {
  const dir = keysDir(home);
  const tagOf = async (file: string) =>
    stat(join(dir, file)).then(
      (s) => `${s.ino}:${s.mtimeMs}:${s.size}`,
      () => '-',
    );
  let cached: { tag: string; ring: KeyringFile } | undefined;
  const loaded = new Map<string, SigningKey>();
  return {
    async current(now = new Date()) {
      const tag = `${await tagOf(KEYRING_FILE)}/${await tagOf(`${FIRST_KEY_FILE}.key`)}`;
      if (cached?.tag !== tag) {
        cached = { tag, ring: await readKeyring(home) };
        loaded.clear();
      }
      const entry = signerAt(cached.ring, now);
      let key = loaded.get(entry.keyId);
      if (!key) {
        key = await loadEntry(home, entry);
        loaded.set(entry.keyId, key);
      }
      return key;
    },
  };
}

/** A signer that always uses one key (tests, tools). */
export function fixedSigner(key: SigningKey): SigningKeySource {
  return { current: async () => key };
}
