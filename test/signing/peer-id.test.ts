// The node identity is read and made without libp2p (so an agent without the mesh never loads
// it); these properties hold it to libp2p's own encoding and peer ids, key for key.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { generateKeyPair, generateKeyPairFromSeed, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { loadOrCreatePeerKey } from '../../p2p/identity.ts';
import {
  decodeEd25519PeerKey,
  encodeEd25519PeerKey,
  loadOrCreateEd25519PeerKey,
} from '../../p2p/peer-key-file.ts';
import { loadNodeIdentity, peerKeyPath } from '../../node-agent/event-signer.ts';
import { KeyError, nodeIdentityFromPeerKey, peerIdOfPublicKey } from '../../signing/index.ts';
import { base58btc } from '../../signing/peer-id.ts';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
const tempDir = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-peer-id-'));
  dirs.push(dir);
  return dir;
};

test('peer id - the peer id of an ed25519 key is the one libp2p derives', async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 32, maxLength: 32 }), async (seed) => {
      const key = await generateKeyPairFromSeed('Ed25519', seed);
      const raw = Buffer.from(key.publicKey.raw).toString('base64');
      assert.equal(peerIdOfPublicKey(raw), peerIdFromPrivateKey(key).toString());
    }),
    { numRuns: 200 },
  );
});

test('peer id - base58btc keeps leading zero bytes as 1s', () => {
  assert.equal(base58btc(Uint8Array.of(0, 0, 1)), '112');
  assert.equal(base58btc(Uint8Array.of()), '');
  assert.equal(base58btc(Uint8Array.of(0xff)), '5Q');
});

test('peer id - a public key that is not 32 bytes is refused with its length', () => {
  assert.throws(
    () => peerIdOfPublicKey(Buffer.alloc(31).toString('base64')),
    (err: Error) => {
      assert.ok(err instanceof KeyError);
      assert.match(err.message, /32-byte ed25519 public key.*got 31 bytes/);
      return true;
    },
  );
});

test('peer key file - the encoding is byte for byte the one libp2p writes and reads', async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 32, maxLength: 32 }), async (seed) => {
      const key = await generateKeyPairFromSeed('Ed25519', seed);
      const libp2pBytes = privateKeyToProtobuf(key);
      const decoded = decodeEd25519PeerKey(libp2pBytes);
      assert.ok(decoded, 'a libp2p ed25519 key file decodes');
      assert.deepEqual(Buffer.from(decoded.seed), Buffer.from(seed));
      assert.deepEqual(Buffer.from(decoded.publicKey), Buffer.from(key.publicKey.raw));
      assert.deepEqual(Buffer.from(encodeEd25519PeerKey(decoded)), Buffer.from(libp2pBytes));
    }),
    { numRuns: 100 },
  );
});

test('peer key file - a key made without libp2p is the same identity when libp2p reads it', async () => {
  const dir = await tempDir();
  const made = await loadOrCreateEd25519PeerKey(join(dir, 'peer.key'));
  assert.ok(made?.created);
  const { key, created } = await loadOrCreatePeerKey(join(dir, 'peer.key'));
  assert.equal(created, false);
  const viaLibp2p = nodeIdentityFromPeerKey(key);
  const own = await loadNodeIdentity(dir);
  assert.equal(own.peerId, peerIdFromPrivateKey(key).toString());
  assert.equal(own.peerId, viaLibp2p.peerId);
  assert.equal(own.keyId, viaLibp2p.keyId);
  assert.equal(own.publicKey, viaLibp2p.publicKey);
});

test('peer key file - a key libp2p made is read as the same identity without libp2p', async () => {
  const dir = await tempDir();
  const { key } = await loadOrCreatePeerKey(peerKeyPath(dir));
  const own = await loadOrCreateEd25519PeerKey(peerKeyPath(dir));
  assert.ok(own && !own.created, 'read, not replaced');
  assert.equal((await loadNodeIdentity(dir)).peerId, peerIdFromPrivateKey(key).toString());
});

test('peer key file - a non-ed25519 key goes to libp2p, which refuses it as a node identity', async () => {
  const dir = await tempDir();
  const path = peerKeyPath(dir);
  await writeFile(path, privateKeyToProtobuf(await generateKeyPair('secp256k1')), { mode: 0o600 });
  assert.equal(await loadOrCreateEd25519PeerKey(path), undefined);
  await assert.rejects(loadNodeIdentity(dir), /expected an Ed25519 node key, got secp256k1/);
});

test('peer key file - a key file others can read is refused, as before', async () => {
  const dir = await tempDir();
  const path = peerKeyPath(dir);
  await loadOrCreateEd25519PeerKey(path);
  await chmod(path, 0o644);
  await assert.rejects(loadNodeIdentity(dir), /has mode 644, expected 600/);
});
