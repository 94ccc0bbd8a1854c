// Compliance suite every ChunkStore implementation must pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import {
  ChunkIntegrityError,
  createFileChunkStore,
  createMemoryChunkStore,
  sha256Digest,
  type ChunkStore,
} from '../../p2p/index.ts';
import { cleanupDirs, tempDir } from './helpers.ts';

after(cleanupDirs);

const implementations: Record<string, () => Promise<ChunkStore>> = {
  memory: async () => createMemoryChunkStore(),
  file: async () => createFileChunkStore(await tempDir('slotflow-chunks-')),
};

for (const [name, make] of Object.entries(implementations)) {
  test(`chunk store (${name}) - stores by digest and returns the same bytes`, async () => {
    const store = await make();
    const bytes = new Uint8Array(randomBytes(4096));
    const digest = sha256Digest(bytes);
    assert.equal(await store.has(digest), false);
    assert.equal(await store.get(digest), undefined);
    await store.put(digest, bytes);
    assert.equal(await store.has(digest), true);
    assert.deepEqual(await store.get(digest), bytes);
    await store.put(digest, bytes); // idempotent
    await store.delete(digest);
    assert.equal(await store.has(digest), false);
    await store.delete(digest); // absent: no error
  });

  test(`chunk store (${name}) - refuses bytes that do not hash to the digest`, async () => {
    const store = await make();
    const bytes = new Uint8Array(randomBytes(100));
    const wrong = sha256Digest(new Uint8Array(randomBytes(100)));
    await assert.rejects(store.put(wrong, bytes), ChunkIntegrityError);
    assert.equal(await store.has(wrong), false);
  });

  test(`chunk store (${name}) - an empty chunk is a chunk`, async () => {
    const store = await make();
    const empty = new Uint8Array(0);
    await store.put(sha256Digest(empty), empty);
    assert.deepEqual(await store.get(sha256Digest(empty)), empty);
  });
}
