import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { PeerIdentityError } from './errors.ts';
import { readPeerKeyFile, writeKeyFile } from './peer-key-file.ts';

export { writeKeyFile } from './peer-key-file.ts';

/**
 * Loads this node's libp2p private key from `path`, creating an Ed25519 key there (mode 0600)
 * on first start, so the node keeps its peer id across restarts and reboots. A key file that
 * group or others can read is refused, as ssh does: anyone who reads it can impersonate the node.
 */
export async function loadOrCreatePeerKey(path: string): Promise<{ key: PrivateKey; created: boolean }> {
  const bytes = await readPeerKeyFile(path);
  if (bytes === undefined) {
    const key = await generateKeyPair('Ed25519');
    await writeKeyFile(path, privateKeyToProtobuf(key));
    return { key, created: true };
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
