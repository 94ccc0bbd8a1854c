// The node's identity key file without libp2p: the file format is libp2p's (a protobuf
// PrivateKey), but an ed25519 key in it is plain bytes, so an agent without the mesh reads and
// creates it with node:crypto alone. identity.ts turns the same file into a libp2p key.
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PeerIdentityError } from './errors.ts';

/** Writes a private key file atomically (mode 0600, synced, its directory 0700 when made). */
export async function writeKeyFile(path: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  const file = await open(tmp, 'w', 0o600);
  try {
    await file.writeFile(bytes);
    await file.sync();
  } finally {
    await file.close();
  }
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

/**
 * The bytes of a peer key file, or undefined when there is none. A key file that group or others
 * can read is refused, as ssh does: anyone who reads it can impersonate the node.
 */
export async function readPeerKeyFile(path: string): Promise<Uint8Array | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PeerIdentityError(`cannot read the peer key ${path}; check the data dir's permissions`, {
      cause: err,
    });
  }
  const mode = (await stat(path)).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new PeerIdentityError(
      `peer key ${path} has mode ${mode.toString(8)}, expected 600 (readable by its owner only); run chmod 600 ${path}`,
    );
  }
  return bytes;
}

// protobuf PrivateKey { Type = 1 (Ed25519); Data = 64 bytes: seed, then public key }.
const ED25519_HEADER = Uint8Array.of(0x08, 0x01, 0x12, 0x40);

/** An ed25519 key as raw bytes. */
export interface Ed25519KeyBytes {
  /** The 32-byte private seed. */
  readonly seed: Uint8Array;
  /** The raw 32-byte public key. */
  readonly publicKey: Uint8Array;
}

/** The libp2p protobuf encoding of an ed25519 private key (what libp2p writes for one). */
export function encodeEd25519PeerKey(key: Ed25519KeyBytes): Uint8Array {
  const out = new Uint8Array(ED25519_HEADER.length + 64);
  out.set(ED25519_HEADER);
  out.set(key.seed, ED25519_HEADER.length);
  out.set(key.publicKey, ED25519_HEADER.length + 32);
  return out;
}

/** The ed25519 key in a libp2p protobuf private key, or undefined when it holds anything else. */
export function decodeEd25519PeerKey(bytes: Uint8Array): Ed25519KeyBytes | undefined {
  if (bytes.length !== ED25519_HEADER.length + 64) return undefined;
  if (!ED25519_HEADER.every((b, i) => bytes[i] === b)) return undefined;
  const data = bytes.subarray(ED25519_HEADER.length);
  return { seed: data.slice(0, 32), publicKey: data.slice(32, 64) };
}

/** A new ed25519 key from node:crypto. */
export function generateEd25519Key(): Ed25519KeyBytes {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const pub = publicKey.export({ format: 'jwk' });
  return { seed: Buffer.from(jwk.d!, 'base64url'), publicKey: Buffer.from(pub.x!, 'base64url') };
}

/**
 * Loads this node's ed25519 identity key from `path`, creating one there (mode 0600) on first
 * start. Undefined when the file holds a key in another form (another key type, an older
 * encoding): the caller then reads it with libp2p (identity.ts), which knows them all.
 */
export async function loadOrCreateEd25519PeerKey(
  path: string,
): Promise<(Ed25519KeyBytes & { created: boolean }) | undefined> {
  const bytes = await readPeerKeyFile(path);
  if (bytes === undefined) {
    const key = generateEd25519Key();
    await writeKeyFile(path, encodeEd25519PeerKey(key));
    return { ...key, created: true };
  }
  const key = decodeEd25519PeerKey(bytes);
  return key && { ...key, created: false };
}
