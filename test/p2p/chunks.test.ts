import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { manifestOf } from '../../activities/builders/manifest.ts';
import {
  assembleImage,
  createFileChunkStore,
  createMemoryChunkStore,
  createPeerArtifactSource,
  importImage,
  type SlotflowPeer,
} from '../../p2p/index.ts';
import type { ArtifactManifest } from '../../schema/index.ts';
import type { SigningKey } from '../../signing/index.ts';
import {
  cleanupDirs,
  controlPlaneKey,
  startMesh,
  startPeer,
  stopAll,
  tempDir,
  until,
  waitForMesh,
} from './helpers.ts';

let key: SigningKey;
let imagePath: string;
let manifest: ArtifactManifest;
const CHUNK = 256 * 1024;

before(async () => {
  key = await controlPlaneKey();
  const dir = await tempDir();
  imagePath = join(dir, 'image.img');
  await writeFile(imagePath, randomBytes(8 * 1024 * 1024 + 12_345));
  manifest = await manifestOf(imagePath, { format: 'raw', version: '2.0.0' }, CHUNK);
});

after(cleanupDirs);

test('chunk fetch - a node without NATS gets the image only from peers, verified chunk by chunk', async () => {
  const seedDir = await tempDir();
  const seedStore = createFileChunkStore(join(seedDir, 'chunks'));
  await importImage(seedStore, manifest, imagePath);
  const seed = await startPeer('seed', key, { dataDir: seedDir, chunkStore: seedStore });
  const node = await startPeer('fetcher', key, { bootstrap: [seed.multiaddrs()[0]!] });
  try {
    await waitForMesh([seed, node]);
    await seed.chunks.provide(manifest);
    const report = await node.chunks.fetch({ manifest, deadline: Date.now() + 20_000 });
    assert.equal(report.fetched, manifest.chunks.length);
    assert.deepEqual(report.corruptPeers, []);
    const out = join(await tempDir(), 'slot.img');
    await assembleImage(node.chunks.store, manifest, out);
    assert.deepEqual(await readFile(out), await readFile(imagePath));
    assert.equal(seed.chunks.server.stats.chunksServed, manifest.chunks.length);
    // The same through the artifact-source shape the agent's fetcher uses, resuming mid-image.
    const source = createPeerArtifactSource(node.chunks);
    const parts: Uint8Array[] = [];
    for await (const part of await source.open(manifest, 2 * CHUNK + 10)) parts.push(part);
    assert.deepEqual(Buffer.concat(parts), (await readFile(imagePath)).subarray(2 * CHUNK + 10));
  } finally {
    await stopAll([seed, node]);
  }
});

test('chunk fetch - a peer serving a corrupted chunk is detected and the chunk comes from another peer', async () => {
  const seed = await startPeer('seed', key, { chunkStore: createMemoryChunkStore() });
  await importImage(seed.chunks.store, manifest, imagePath);
  // The liar holds only chunk 3, corrupted on its disk, so as a partial holder it is asked first.
  const liarDir = await tempDir();
  const liarStore = createFileChunkStore(join(liarDir, 'chunks'));
  const victim = manifest.chunks[3]!;
  const good = (await seed.chunks.store.get(victim.digest))!;
  await liarStore.put(victim.digest, good);
  const hex = victim.digest.slice('sha256:'.length);
  const corrupted = Buffer.from(good);
  corrupted[100] = corrupted[100]! ^ 0xff;
  await writeFile(join(liarDir, 'chunks', 'sha256', hex.slice(0, 2), hex), corrupted);
  const liar = await startPeer('liar', key, {
    dataDir: liarDir,
    chunkStore: liarStore,
    bootstrap: [seed.multiaddrs()[0]!],
  });
  const node = await startPeer('fetcher', key, { bootstrap: [seed.multiaddrs()[0]!, liar.multiaddrs()[0]!] });
  try {
    await waitForMesh([seed, liar, node]);
    await seed.chunks.provide(manifest);
    await liar.chunks.provide(manifest);
    await until(
      () => node.chunks.directory.holders(manifest.digest, 3).length === 2,
      5_000,
      'both announcements',
    );
    const report = await node.chunks.fetch({ manifest, deadline: Date.now() + 20_000 });
    assert.deepEqual(report.corruptPeers, [liar.peerId]);
    assert.equal(report.byPeer[liar.peerId], undefined);
    const out = join(await tempDir(), 'slot.img');
    await assembleImage(node.chunks.store, manifest, out);
    assert.deepEqual(await readFile(out), await readFile(imagePath));
  } finally {
    await stopAll([seed, liar, node]);
  }
});

test('chunk fetch - with eight nodes fetching at once the origin uploads each chunk about once', async () => {
  // A small image in small chunks: the point is the chunk count, and nine nodes share one CPU here.
  const small = join(await tempDir(), 'small.img');
  await writeFile(small, randomBytes(2 * 1024 * 1024));
  const manifest = await manifestOf(small, { format: 'raw', version: '2.0.0' }, 64 * 1024);
  const peers = await startMesh(9, key, () => ({ chunkStore: createMemoryChunkStore() }));
  const [origin, ...fetchers] = peers as [SlotflowPeer, ...SlotflowPeer[]];
  try {
    await importImage(origin.chunks.store, manifest, small);
    await origin.chunks.provide(manifest);
    await until(
      () => fetchers.every((f) => f.chunks.directory.isComplete(manifest.digest, origin.peerId)),
      5_000,
      'the announcement',
    );
    const reports = await Promise.all(
      fetchers.map((f) => f.chunks.fetch({ manifest, deadline: Date.now() + 60_000 })),
    );
    assert.ok(reports.every((r) => r.fetched === manifest.chunks.length));
    const chunks = manifest.chunks.length;
    const sent = origin.chunks.server.stats.chunksServed;
    const total = peers.reduce((n, p) => n + p.chunks.server.stats.chunksServed, 0);
    assert.equal(total, chunks * fetchers.length, 'every chunk was uploaded once per fetcher, by someone');
    assert.ok(
      sent >= chunks && sent <= Math.ceil(chunks * 1.25),
      `origin sent ${sent} chunks for an image of ${chunks}`,
    );
  } finally {
    await stopAll(peers);
  }
});
