import { chmod, mkdir, open, readFile, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
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
 * Loads this node's libp2p private key from `path`, creating an Ed25519 key there (mode 0600)
 * on first start, so the node keeps its peer id across restarts and reboots. A key file that
 * group or others can read is refused, as ssh does: anyone who reads it can impersonate the node.
 */
export async function loadOrCreatePeerKey(path: string): Promise<{ key: PrivateKey; created: boolean }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new PeerIdentityError(`cannot read the peer key ${path}; check the data dir's permissions`, {
        cause: err,
      });
    }
    const key = await generateKeyPair('Ed25519');
    await writeKeyFile(path, privateKeyToProtobuf(key));
    return { key, created: true };
  }
  const mode = (await stat(path)).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new PeerIdentityError(
      `peer key ${path} has mode ${mode.toString(8)}, expected 600 (readable by its owner only); run chmod 600 ${path}`,
    );
  }
  try {
    return { key: privateKeyFromProtobuf(bytes), created: false };
  } catch (err) {
    throw new PeerIdentityError(
      `${path}: expected a libp2p private key (protobuf); move the file away to create a new identity (the node then gets a new peer id)`,
      { cause: err },
    );
  }
}
