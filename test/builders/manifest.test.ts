// manifestOf reads the image in large blocks; the digests must not depend on where blocks end.
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manifestOf } from '../../activities/builders/manifest.ts';

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

test('manifest - digests match hashing each piece, across read boundaries and odd chunk sizes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'manifest-'));
  try {
    // Larger than two 8 MiB reads, and not a multiple of any chunk size below.
    const bytes = randomBytes(17 * 1024 * 1024 + 12_345);
    const file = join(dir, 'img');
    await writeFile(file, bytes);
    for (const chunkSize of [3_000, 1024 * 1024, 9 * 1024 * 1024, 32 * 1024 * 1024]) {
      const m = await manifestOf(file, { format: 'raw', version: '1' }, chunkSize);
      assert.equal(m.digest, sha256(bytes));
      assert.equal(m.size, bytes.length);
      assert.equal(m.chunks.length, Math.ceil(bytes.length / chunkSize));
      for (const c of m.chunks) {
        const piece = bytes.subarray(c.index * chunkSize, (c.index + 1) * chunkSize);
        assert.deepEqual(c, { index: c.index, size: piece.length, digest: sha256(piece) });
      }
    }
    await writeFile(join(dir, 'empty'), '');
    const empty = await manifestOf(join(dir, 'empty'), { format: 'raw', version: '1' });
    assert.deepEqual([empty.size, empty.chunks, empty.digest], [0, [], sha256(new Uint8Array())]);
    await assert.rejects(manifestOf(file, { format: 'raw', version: '1' }, 0), /positive whole number/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
