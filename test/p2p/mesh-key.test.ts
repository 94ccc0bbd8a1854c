import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKey } from '@libp2p/pnet';
import { multiaddr } from '@multiformats/multiaddr';
import {
  createMeshKey,
  createP2pNode,
  loadMeshKey,
  MeshKeyError,
  P2pConfigError,
  type P2pNode,
  type P2pNodeInit,
} from '../../p2p/index.ts';
import { fixPnetCipher, xsalsa20 } from '../../p2p/pnet-cipher-fix.ts';
import { cleanupDirs, LOOPBACK, tempDir, testLog, testMeshKey, until } from './helpers.ts';

const nodes: P2pNode[] = [];
after(async () => {
  await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
  await cleanupDirs();
});

async function node(extra: Partial<P2pNodeInit>): Promise<P2pNode> {
  const n = await createP2pNode({
    dataDir: await tempDir(),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    allowedNetworks: LOOPBACK,
    log: testLog(),
    ...extra,
  });
  nodes.push(n);
  await n.start();
  return n;
}

function otherKey(): Uint8Array {
  const key = new Uint8Array(95);
  generateKey(key);
  return key;
}

test('closed mesh - a peer without the pre-shared key, or with another one, cannot connect', async () => {
  const member = await node({ meshKey: testMeshKey() });
  const addr = multiaddr(member.multiaddrs()[0]!);
  const open = await node({ openMesh: true });
  const stranger = await node({ meshKey: otherKey() });

  // Without the key the handshake is garbage to the member: it fails, or never completes.
  await assert.rejects(open.libp2p.dial(addr, { signal: AbortSignal.timeout(2_000) }));
  await assert.rejects(stranger.libp2p.dial(addr, { signal: AbortSignal.timeout(2_000) }));
  assert.deepEqual(member.libp2p.getPeers(), []);

  // The same address range, the right key: the connection is made.
  const fellow = await node({ meshKey: testMeshKey() });
  const conn = await fellow.libp2p.dial(addr, { signal: AbortSignal.timeout(5_000) });
  assert.equal(conn.remotePeer.toString(), member.peerId);
  await until(() => member.libp2p.getPeers().length > 0, 5_000, 'the member to see the connection');
  assert.deepEqual(
    member.libp2p.getPeers().map(String),
    [fellow.peerId],
    'only the peer with the key is connected',
  );
});

test('closed mesh - a node refuses to start without a mesh key unless the mesh is declared open', async () => {
  await assert.rejects(
    createP2pNode({ dataDir: await tempDir(), listen: [], log: testLog() }),
    (err: unknown) => err instanceof P2pConfigError && /mesh pre-shared key/.test(err.message),
  );
});

test('closed mesh - the key file is made private, and a readable or malformed one is refused', async () => {
  const dir = await tempDir();
  const path = join(dir, 'keys', 'mesh.psk');
  const made = await createMeshKey(path);
  assert.equal(made.created, true);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  const key = await loadMeshKey(path);
  assert.equal((await createMeshKey(path)).created, false, 'an existing key is kept');
  assert.deepEqual(await loadMeshKey(path), key);

  await chmod(path, 0o644);
  await assert.rejects(
    loadMeshKey(path),
    (err: unknown) => err instanceof MeshKeyError && /chmod 600/.test(err.message),
  );
  const bad = join(dir, 'bad.psk');
  await writeFile(bad, 'not a swarm key\n', { mode: 0o600 });
  await assert.rejects(
    loadMeshKey(bad),
    (err: unknown) => err instanceof MeshKeyError && /swarm key/.test(err.message),
  );
  await assert.rejects(
    loadMeshKey(join(dir, 'missing.psk')),
    (err: unknown) => err instanceof MeshKeyError && /keys mesh-init/.test(err.message),
  );
});

test('closed mesh - busy encrypted connections side by side neither exhaust the cipher memory nor garble data', () => {
  fixPnetCipher();
  // Two connections' ciphers taking turns with large reads, as chunk transfers do: unfixed, each
  // turn grew the shared WebAssembly memory by its whole size and the agent died within ~30 turns.
  const key = new Uint8Array(32).fill(7);
  const send = xsalsa20(new Uint8Array(24).fill(1), key);
  const receive = xsalsa20(new Uint8Array(24).fill(1), key);
  const other = xsalsa20(new Uint8Array(24).fill(2), key);
  const chunk = new Uint8Array(1 << 20).map((_, i) => i % 251);
  for (let turn = 0; turn < 70; turn++) {
    const sealed = send.update(chunk);
    other.update(new Uint8Array(100 + turn));
    other.update(chunk);
    assert.ok(Buffer.from(receive.update(sealed)).equals(Buffer.from(chunk)), `turn ${turn} decrypts`);
  }
});
