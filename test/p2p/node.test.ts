import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { multiaddr } from '@multiformats/multiaddr';
import {
  allowedNetworks,
  createP2pNode,
  P2pConfigError,
  PeerIdentityError,
  type P2pNode,
} from '../../p2p/index.ts';
import { cleanupDirs, LOOPBACK, tempDir, testLog, testMeshKey, until } from './helpers.ts';

after(cleanupDirs);

async function node(
  dataDir: string,
  extra: Partial<Parameters<typeof createP2pNode>[0]> = {},
): Promise<P2pNode> {
  const n = await createP2pNode({
    dataDir,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    allowedNetworks: LOOPBACK,
    redialIntervalMs: 300,
    log: testLog(),
    meshKey: testMeshKey(),
    ...extra,
  });
  await n.start();
  return n;
}

test('p2p node - the peer identity survives a restart and its key file is private', async () => {
  const dir = await tempDir();
  const first = await node(dir);
  const id = first.peerId;
  await first.stop();
  assert.equal((await stat(join(dir, 'peer.key'))).mode & 0o777, 0o600);
  const again = await node(dir);
  assert.equal(again.peerId, id);
  await again.stop();
  await chmod(join(dir, 'peer.key'), 0o644);
  await assert.rejects(
    node(dir),
    (err: unknown) => err instanceof PeerIdentityError && /chmod 600/.test(err.message),
  );
});

test('p2p node - bootstrap addresses without a peer id are dialled and re-dialled', async () => {
  const a = await node(await tempDir());
  const port = multiaddr(a.multiaddrs()[0]!)
    .getComponents()
    .find((c) => c.name === 'tcp')!.value;
  const b = await node(await tempDir(), { bootstrap: [`/ip4/127.0.0.1/tcp/${port}`] });
  const c = await node(await tempDir(), { bootstrap: [`/dns4/localhost/tcp/${port}`] });
  try {
    await until(
      () => b.libp2p.getConnections().some((x) => x.remotePeer.toString() === a.peerId),
      5_000,
      'b to a',
    );
    await until(
      () => c.libp2p.getConnections().some((x) => x.remotePeer.toString() === a.peerId),
      5_000,
      'c to a by name',
    );
    // Drop the connection: the dialer brings it back.
    await b.libp2p.hangUp(a.libp2p.peerId);
    await until(
      () => b.libp2p.getConnections().some((x) => x.remotePeer.toString() === a.peerId),
      5_000,
      'the re-dial',
    );
  } finally {
    await Promise.all([a.stop(), b.stop(), c.stop()]);
  }
});

test('p2p node - the gater refuses to dial or accept outside the allowed networks', async () => {
  const open = await node(await tempDir());
  const closed = await node(await tempDir(), { allowedNetworks: ['10.0.0.0/8'] });
  try {
    await assert.rejects(closed.libp2p.dial(multiaddr(open.multiaddrs()[0]!)), /denied|gater/i);
    assert.ok(closed.gaterStats.deniedDials >= 1);
    await assert.rejects(open.libp2p.dial(multiaddr(closed.multiaddrs()[0]!)));
    await until(() => closed.gaterStats.deniedInbound >= 1, 2_000, 'the inbound refusal');
    assert.equal(closed.libp2p.getConnections().length, 0);
  } finally {
    await Promise.all([open.stop(), closed.stop()]);
  }
});

test('p2p node - allowed networks are parsed strictly', async () => {
  assert.throws(() => allowedNetworks(['10.0.0.0/33']), P2pConfigError);
  assert.throws(() => allowedNetworks(['not-an-ip/8']), P2pConfigError);
  const nets = allowedNetworks(['127.0.0.0/8', 'fc00::/7']);
  assert.equal(nets.allowsIp('127.3.2.1'), true);
  assert.equal(nets.allowsIp('::ffff:127.0.0.1'), true);
  assert.equal(nets.allowsIp('fd12::1'), true);
  assert.equal(nets.allowsIp('8.8.8.8'), false);
  assert.equal(await nets.allowsMultiaddr(multiaddr('/ip4/192.168.1.1/tcp/4001')), false);
  assert.equal(await nets.allowsMultiaddr(multiaddr('/dns4/localhost/tcp/4001')), true);
});
