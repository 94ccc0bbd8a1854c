import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { manifestOf } from '../../activities/builders/manifest.ts';
import { createMemoryChunkStore, importImage } from '../../p2p/index.ts';
import type { SignedCommand } from '../../schema/index.ts';
import {
  cleanupDirs,
  controlPlaneKey,
  startPeer,
  stopAll,
  tempDir,
  until,
  upgradeCommand,
} from './helpers.ts';

after(cleanupDirs);

test('relay - a node that cannot be dialled directly is reached through a relay', async () => {
  const key = await controlPlaneKey();
  const relay = await startPeer('relay', key, { relay: { serve: true } });
  const received: SignedCommand[] = [];
  // Behind NAT: no listen address of its own, only a reservation on the relay.
  const hidden = await startPeer('hidden', key, {
    listen: [],
    relay: { reserve: true },
    bootstrap: [relay.multiaddrs()[0]!],
    chunkStore: createMemoryChunkStore(),
    onCommand: (c) => void received.push(c),
  });
  const other = await startPeer('other', key, {
    bootstrap: [relay.multiaddrs()[0]!],
    chunkStore: createMemoryChunkStore(),
  });
  try {
    await until(
      () => hidden.multiaddrs().some((a) => a.includes('/p2p-circuit')),
      10_000,
      'a relay reservation',
    );
    assert.ok(
      hidden.multiaddrs().every((a) => a.includes('/p2p-circuit')),
      'the hidden node has no direct address',
    );

    // The hidden node seeds an image; the other node learns its relayed address from the
    // announcement and fetches from it, over a relayed connection.
    const img = join(await tempDir(), 'img');
    await writeFile(img, randomBytes(300_000));
    const manifest = await manifestOf(img, { format: 'raw', version: '3' }, 64 * 1024);
    await importImage(hidden.chunks.store, manifest, img);
    await until(
      () => hidden.node.pubsub.getSubscribers('slotflow/chunks/1').length > 0,
      5_000,
      'hidden to subscribe',
    );
    await hidden.chunks.provide(manifest);
    await until(
      () => other.chunks.directory.isComplete(manifest.digest, hidden.peerId),
      5_000,
      'the announcement',
    );
    const report = await other.chunks.fetch({ manifest, deadline: Date.now() + 15_000 });
    assert.equal(report.byPeer[hidden.peerId], manifest.chunks.length);
    const conns = other.node.libp2p.getConnections().filter((c) => c.remotePeer.toString() === hidden.peerId);
    assert.ok(conns.length > 0 && conns.every((c) => c.remoteAddr.toString().includes('/p2p-circuit')));

    // Gossip reaches it too.
    const cmd = upgradeCommand(key, 'hidden');
    await other.commands.publishCommand(cmd);
    await until(() => received.length === 1, 10_000, 'the command through the relay');
    assert.equal(received[0]!.signature, cmd.signature);
  } finally {
    await stopAll([relay, hidden, other]);
  }
});
