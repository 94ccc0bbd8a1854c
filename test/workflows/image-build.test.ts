import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Objm } from '@nats-io/obj';
import { WorkflowFailedError } from '@temporalio/client';
import { IMAGES_BUCKET } from '../../schema/index.ts';
import { TASK_QUEUE } from '../../workflows/definitions.ts';
import type { imageBuildWorkflow } from '../../workflows/image-build.ts';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';

let plane: ControlPlane;
before(async () => {
  plane = await startControlPlane();
});
after(() => plane?.stop());

/** A small root filesystem with fixed contents and times. */
async function makeRootfs(version: string): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'slotflow-rootfs-'));
  await mkdir(join(root, 'etc'));
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await writeFile(join(root, 'etc/os-release'), `NAME=slotflow-test\nVERSION=${version}\n`);
  await writeFile(join(root, 'usr/bin/app'), Buffer.alloc(3 * 1024 * 1024 + 123, 7));
  for (const p of ['etc/os-release', 'usr/bin/app', 'etc', 'usr/bin', 'usr', '.']) {
    await utimes(join(root, p), 1_700_000_000, 1_700_000_000);
  }
  return root;
}

function build(buildId: string, path: string, version: string) {
  return plane.client.workflow.execute<typeof imageBuildWorkflow>('imageBuildWorkflow', {
    workflowId: `image/${buildId}`,
    taskQueue: TASK_QUEUE,
    args: [{ buildId, request: { type: 'rootfs', path, format: 'ext4' }, version }],
  });
}

test('image build - a rootfs becomes a published, verified ext4 image with a chunk manifest', async () => {
  const rootfs = await makeRootfs('2.0.0');
  const result = await build('b-1', rootfs, '2.0.0');
  assert.equal(result.manifest.format, 'ext4');
  assert.equal(result.bucket, IMAGES_BUCKET);
  assert.ok(result.manifest.chunks.length >= 4, 'a 3 MiB file needs several 1 MiB chunks');
  assert.match(result.builder, /mke2fs/);
  const os = await new Objm(plane.nc).open(IMAGES_BUCKET);
  const object = await os.get(result.object);
  assert.ok(object, 'the image is in the object store');
  const hash = createHash('sha256');
  for await (const piece of object.data as unknown as AsyncIterable<Uint8Array>) hash.update(piece);
  assert.equal(`sha256:${hash.digest('hex')}`, result.manifest.digest);
});

test('image build - the same rootfs gives the same digest twice', async () => {
  const first = await build('b-2', await makeRootfs('2.1.0'), '2.1.0');
  const second = await build('b-3', await makeRootfs('2.1.0'), '2.1.0');
  assert.equal(second.manifest.digest, first.manifest.digest);
  assert.deepEqual(second.manifest.chunks, first.manifest.chunks);
});

test('image build - a missing rootfs fails the workflow at once with a clear reason', async () => {
  await assert.rejects(build('b-4', '/nonexistent/rootfs', '1.0.0'), (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError);
    const cause = err.cause?.cause as { message?: string; type?: string } | undefined;
    assert.equal(cause?.type, 'BuildFailed');
    assert.match(cause?.message ?? '', /rootfs \/nonexistent\/rootfs does not exist/);
    return true;
  });
});
