// Fuzz: what an HTTP mirror answers to the agent's resumed download (node-agent/artifact
// http-source, driven by the real fetcher). A real HTTP server on loopback answers the Range
// request with a fuzzed status, Content-Length, Content-Range and body (the right slice, another
// slice, cut short, padded, random). Properties: the fetch ends with exactly the image or with
// the fetcher's own errors (ArtifactInvalidError / ArtifactUnavailableError) naming the mirror;
// the verified chunks already in the staging file are never overwritten with anything else; and
// a mirror that answers a range it was not asked for is named as such.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { manifestOf } from '../../activities/builders/manifest.ts';
import { fetchImage } from '../../node-agent/artifact/fetcher.ts';
import { createHttpSource } from '../../node-agent/artifact/http-source.ts';
import { ArtifactInvalidError, ArtifactUnavailableError } from '../../node-agent/errors.ts';
import type { ArtifactManifest } from '../../schema/index.ts';
import { cleanupDirs, tempDir } from '../p2p/helpers.ts';
import { fuzz } from './harness.ts';

const CHUNK = 1024;
const image = randomBytes(CHUNK * 6 + 100);
let manifest: ArtifactManifest;
let dir: string;
let server: Server;
let base: string;

/** How the mirror answers the next request. */
interface Answer {
  status: number;
  /** Start of the slice sent, relative to the asked offset (0: the right slice). */
  shift: number;
  /** Bytes cut from (negative) or added to (positive) the end of the slice. */
  tail: number;
  contentLength: 'right' | 'wrong' | 'none';
  contentRange: 'right' | 'shifted' | 'garbage' | 'none';
  garbage: string;
  random: boolean;
}
let answer: Answer;

before(async () => {
  dir = await tempDir();
  await writeFile(join(dir, 'image.img'), image);
  manifest = await manifestOf(join(dir, 'image.img'), { format: 'raw', version: '2.0.0' }, CHUNK);
  server = createServer((req, res) => {
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const asked = range ? Number(range[1]) : 0;
    const from = Math.max(0, Math.min(image.length, asked + answer.shift));
    let body: Buffer = image.subarray(from, Math.max(from, image.length + Math.min(0, answer.tail)));
    if (answer.tail > 0) body = Buffer.concat([body, randomBytes(answer.tail)]);
    if (answer.random) body = randomBytes(body.length);
    const headers: Record<string, string> = {};
    if (answer.contentLength === 'right') headers['content-length'] = String(body.length);
    if (answer.contentLength === 'wrong') headers['content-length'] = String(body.length + 7);
    if (answer.contentRange === 'right')
      headers['content-range'] = `bytes ${from}-${from + body.length - 1}/${image.length}`;
    if (answer.contentRange === 'shifted')
      headers['content-range'] = `bytes ${asked}-${asked + body.length - 1}/${image.length}`;
    if (answer.contentRange === 'garbage') headers['content-range'] = answer.garbage;
    try {
      res.writeHead(answer.status, headers);
      res.end(answer.contentLength === 'wrong' ? undefined : body);
      if (answer.contentLength === 'wrong') res.destroy();
    } catch {
      res.destroy();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/images`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await cleanupDirs();
});

const answers: fc.Arbitrary<Answer> = fc.record({
  status: fc.constantFrom(200, 206, 206, 206, 204, 301, 404, 416, 500),
  shift: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -CHUNK * 2, max: CHUNK * 2 })),
  tail: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -CHUNK, max: CHUNK })),
  contentLength: fc.constantFrom('right', 'right', 'wrong', 'none'),
  contentRange: fc.constantFrom('right', 'right', 'shifted', 'garbage', 'none'),
  garbage: fc.oneof(
    fc.string({ maxLength: 30 }),
    fc.constantFrom('bytes */1', 'bytes 0-0/0', 'bytes 5-1/9', 'bytes=0-', 'bytes 1-2/x'),
  ),
  random: fc.boolean(),
});

test('fuzz - HTTP Range answers: the image, or a clear error; verified chunks are never overwritten', async () => {
  await fuzz('http-range', fc.tuple(answers, fc.integer({ min: 1, max: 5 })), async ([a, goodChunks]) => {
    answer = a;
    const staging = join(dir, 'staging.img');
    // The staging file holds some verified chunks and junk after them: the fetch resumes there.
    const good = image.subarray(0, goodChunks * CHUNK);
    await writeFile(staging, Buffer.concat([good, randomBytes(37)]));
    try {
      await fetchImage({
        manifest,
        path: staging,
        sources: [createHttpSource(base)],
        deadline: Date.now() + 300,
        retryDelayMs: 400,
        stallTimeoutMs: 2_000,
      });
      assert.deepEqual(
        await readFile(staging),
        image,
        'the fetch ended but the image is not the manifest one',
      );
    } catch (err) {
      assert.ok(
        err instanceof ArtifactInvalidError || err instanceof ArtifactUnavailableError,
        `expected an artifact error, got ${(err as Error).name}: ${(err as Error).message}`,
      );
      assert.match(err.message, /127\.0\.0\.1/, 'the error names the mirror');
      const kept = await readFile(staging);
      assert.deepEqual(kept.subarray(0, good.length), good, 'verified chunks were overwritten');
      // A Content-Range that shows another part than asked names the range, not a chunk digest.
      const badRange =
        a.contentRange === 'garbage' || a.contentRange === 'none' || a.shift !== 0 || a.tail !== 0;
      if (a.status === 206 && a.contentRange !== 'shifted' && badRange) {
        assert.match(
          err.message,
          /Content-Range/,
          'a mirror that sent another range than asked is not named as such',
        );
      }
    }
  });
});

test('http range - regression: a 206 one byte off is refused naming its Content-Range', async () => {
  answer = {
    status: 206,
    shift: 1,
    tail: 0,
    contentLength: 'right',
    contentRange: 'right',
    garbage: '',
    random: false,
  };
  const staging = join(dir, 'staging-regression.img');
  await writeFile(staging, image.subarray(0, CHUNK));
  await assert.rejects(
    fetchImage({
      manifest,
      path: staging,
      sources: [createHttpSource(base)],
      deadline: Date.now() + 300,
      retryDelayMs: 400,
    }),
    (err: Error) =>
      err instanceof ArtifactInvalidError &&
      /Content-Range: bytes 1024-6243\/6244/.test(err.message) &&
      /bytes 1025-/.test(err.message),
  );
});
