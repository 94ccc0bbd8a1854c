import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/nats-core';
import { manifestOf } from '../../activities/builders/manifest.ts';
import type { ArtifactManifest } from '../../schema/index.ts';
import {
  createDirSource,
  createHttpSource,
  createNatsSource,
  digestHex,
  fetchImage,
  type ArtifactSource,
} from '../../node-agent/artifact/index.ts';
import { ArtifactInvalidError, ArtifactUnavailableError } from '../../node-agent/errors.ts';
import { startNats, type NatsHandle } from '../helpers/servers.ts';
import { seededBytes } from './harness.ts';
import { scratchDir } from './scratch.ts';

const CHUNK = 64 * 1024;
let nats: NatsHandle;
let nc: NatsConnection;
let os: ObjectStore;
let dir: string;
let bytes: Buffer;
let manifest: ArtifactManifest;

before(async () => {
  nats = await startNats();
  nc = await nats.connect();
  os = await new Objm(nc).create('test-images');
  dir = await scratchDir('slotflow-sources-');
  bytes = seededBytes(7, 10 * CHUNK + 1234);
  await writeFile(join(dir, 'image.img'), bytes);
  manifest = await manifestOf(join(dir, 'image.img'), { format: 'raw', version: '1.0.0' }, CHUNK);
  await os.putBlob({ name: manifest.digest }, bytes);
});
after(async () => {
  await nats?.stop();
});

/** Wraps a source to record the offsets it is asked for. */
function recording(source: ArtifactSource): ArtifactSource & { offsets: number[] } {
  const offsets: number[] = [];
  return {
    name: source.name,
    offsets,
    open: (m, offset, signal) => (offsets.push(offset), source.open(m, offset, signal)),
  };
}

const fetchTo = (path: string, sources: ArtifactSource[], deadlineMs = 10_000) =>
  fetchImage({ manifest, path, sources, deadline: Date.now() + deadlineMs, retryDelayMs: 50 });

test('artifact sources - NATS Object Store: the image arrives whole and verified', async () => {
  const path = join(dir, 'nats-full.img');
  const result = await fetchTo(path, [createNatsSource(async () => nc, 'test-images')]);
  assert.deepEqual(result, { source: 'nats:test-images', bytes: bytes.length });
  assert.ok((await readFile(path)).equals(bytes));
});

test('artifact sources - NATS Object Store: an interrupted download resumes after the last good chunk', async () => {
  const path = join(dir, 'nats-resume.img');
  // 3 good chunks and half a chunk of garbage, as a crash mid-download leaves it.
  await writeFile(path, Buffer.concat([bytes.subarray(0, 3 * CHUNK), Buffer.alloc(CHUNK / 2, 0xee)]));
  const source = recording(createNatsSource(async () => nc, 'test-images'));
  const result = await fetchTo(path, [source]);
  assert.deepEqual(source.offsets, [3 * CHUNK]);
  assert.equal(result.bytes, bytes.length - 3 * CHUNK);
  assert.ok((await readFile(path)).equals(bytes));
});

test('artifact sources - a corrupted chunk is refused; only the verified chunks before it reach the staging file', async () => {
  const bad = Buffer.from(bytes);
  bad[5 * CHUNK + 10] = bad[5 * CHUNK + 10]! ^ 0x01;
  const store = await new Objm(nc).create('bad-images');
  await store.putBlob({ name: manifest.digest }, bad);
  const path = join(dir, 'nats-bad.img');
  await assert.rejects(
    fetchTo(path, [createNatsSource(async () => nc, 'bad-images')]),
    (err: Error) =>
      err instanceof ArtifactInvalidError && /chunk 5 from nats:bad-images has digest/.test(err.message),
  );
  assert.equal((await readFile(path)).length, 5 * CHUNK);
});

test('artifact sources - a source without the image is skipped for the next; a wrong-size file is invalid', async () => {
  const mirror = await scratchDir('slotflow-mirror-');
  await writeFile(join(mirror, `${digestHex(manifest.digest)}.img`), bytes);
  const path = join(dir, 'fallthrough.img');
  const result = await fetchTo(path, [
    createNatsSource(async () => nc, 'no-such-bucket'),
    createDirSource(mirror),
  ]);
  assert.equal(result.source, `dir:${mirror}`);
  assert.ok((await readFile(path)).equals(bytes));

  await writeFile(join(mirror, `${digestHex(manifest.digest)}.img`), bytes.subarray(1));
  await assert.rejects(
    fetchTo(join(dir, 'short.img'), [createDirSource(mirror)]),
    /has \d+ bytes, the manifest says/,
  );
  await assert.rejects(
    fetchTo(join(dir, 'none.img'), [createDirSource(join(mirror, 'nope'))], 200),
    ArtifactUnavailableError,
  );
});

/** A mirror that cuts the first response after `cutAt` bytes; records Range headers. */
async function mirror(options: {
  cutAt?: number;
  ignoreRange?: boolean;
}): Promise<{ server: Server; url: string; ranges: (string | undefined)[] }> {
  const ranges: (string | undefined)[] = [];
  let first = true;
  const server = createServer((req, res) => {
    ranges.push(req.headers.range);
    if (req.url !== `/images/${digestHex(manifest.digest)}.img`) return void res.writeHead(404).end();
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m && !options.ignoreRange ? Number(m[1]) : 0;
    res.writeHead(start > 0 ? 206 : 200, {
      'content-length': String(bytes.length - start),
      ...(start > 0 ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}),
    });
    if (first && options.cutAt !== undefined) {
      first = false;
      // Give the client time to read what was sent: a stream that errors drops its queued data.
      res.write(bytes.subarray(start, options.cutAt), () => setTimeout(() => res.destroy(), 200));
      return;
    }
    res.end(bytes.subarray(start));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/images`, ranges };
}

test('artifact sources - HTTP: a dropped connection resumes with a Range request from the last good chunk', async () => {
  const { server, url, ranges } = await mirror({ cutAt: 2 * CHUNK + 5000 });
  try {
    const path = join(dir, 'http.img');
    const result = await fetchTo(path, [createHttpSource(url)]);
    assert.equal(result.source, `http:${url}`);
    // The resume starts at a chunk boundary past the first chunk and no later than what was sent.
    assert.equal(ranges.length, 2);
    assert.equal(ranges[0], undefined);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? '')?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= 2 * CHUNK && resumedAt % CHUNK === 0, `resumed at ${ranges[1]}`);
    assert.ok((await readFile(path)).equals(bytes));
  } finally {
    server.close();
  }
});

test('artifact sources - HTTP: a server that ignores Range still yields the right bytes', async () => {
  const { server, url } = await mirror({ cutAt: 4 * CHUNK + 1, ignoreRange: true });
  try {
    const path = join(dir, 'http-norange.img');
    await fetchTo(path, [createHttpSource(url)]);
    assert.ok((await readFile(path)).equals(bytes));
  } finally {
    server.close();
  }
});

test('artifact sources - NATS dies mid-download: the fetch gives it up after the stall limit and resumes from the next source', async () => {
  const gone = await startNats();
  try {
    // Larger than one pull (64 messages of 128 KiB), so most of it is still on the server.
    const big = seededBytes(9, 12 * 1024 * 1024);
    const mirrorDir = await scratchDir('slotflow-mirror-');
    await writeFile(join(mirrorDir, 'big.img'), big);
    const bigManifest = await manifestOf(
      join(mirrorDir, 'big.img'),
      { format: 'raw', version: '1.0.0' },
      CHUNK,
    );
    await writeFile(join(mirrorDir, `${digestHex(bigManifest.digest)}.img`), big);
    const gc = await gone.connect();
    await (await new Objm(gc).create('dying')).putBlob({ name: bigManifest.digest }, big);
    const nats = createNatsSource(async () => gc, 'dying');
    // The server vanishes once the first piece has arrived: its client keeps waiting to reconnect.
    const dying: ArtifactSource = {
      name: nats.name,
      async open(m, offset, signal) {
        const stream = await nats.open(m, offset, signal);
        return (async function* () {
          for await (const piece of stream) {
            yield piece;
            await gone.kill();
          }
        })();
      },
    };
    const dir2 = recording(createDirSource(mirrorDir));
    const path = join(dir, 'nats-dies.img');
    const t0 = Date.now();
    const result = await fetchImage({
      manifest: bigManifest,
      path,
      sources: [dying, dir2],
      deadline: Date.now() + 60_000,
      retryDelayMs: 50,
      stallTimeoutMs: 1_500,
    });
    const took = Date.now() - t0;
    assert.equal(result.source, dir2.name);
    assert.ok((await readFile(path)).equals(big));
    assert.ok(dir2.offsets[0]! > 0, `resumed after the chunks NATS delivered, at ${dir2.offsets[0]}`);
    assert.ok(took < 15_000, `moved on after the stall limit, in ${took} ms`);
  } finally {
    await gone.stop();
  }
});
