// One compliance suite for every image builder: the same input, the same checks. A builder whose
// tool is not installed here is reported as skipped with the reason.
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execaRunner } from '../../runtime/runner.ts';
import { BuildError, type ImageBuilder } from '../../activities/builders/builder.ts';
import { createContainerfileBuilder, findEngine } from '../../activities/builders/containerfile.ts';
import { manifestOf } from '../../activities/builders/manifest.ts';
import { pinOciReference } from '../../activities/builders/oci.ts';
import { createExt4Builder, createSquashfsBuilder } from '../../activities/builders/rootfs.ts';
import { ArtifactManifest } from '../../schema/index.ts';

/** Deterministic bytes that do not compress (so every builder's output is at least this large). */
function incompressible(size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update('slotflow').digest();
  for (let at = 0; at < size; at += block.length) {
    block.copy(out, at);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

async function rootfs(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'slotflow-builder-'));
  await mkdir(join(root, 'etc'));
  await writeFile(join(root, 'etc/os-release'), 'VERSION=3.0.0\n');
  await writeFile(join(root, 'etc/blob'), incompressible(2 * 1024 * 1024 + 5));
  return root;
}

async function has(tool: string, args: string[]): Promise<boolean> {
  return (await execaRunner.run(tool, args, { timeoutMs: 10_000 })).ok;
}

const builders: {
  name: string;
  make: () => ImageBuilder;
  available: () => Promise<string | undefined>;
  source: () => Promise<string>;
}[] = [
  {
    name: 'rootfs-ext4',
    make: () => createExt4Builder({ runner: execaRunner }),
    available: async () => ((await has('mkfs.ext4', ['-V'])) ? undefined : 'mkfs.ext4 is not installed'),
    source: rootfs,
  },
  {
    name: 'rootfs-squashfs',
    make: () => createSquashfsBuilder({ runner: execaRunner }),
    available: async () =>
      (await has('mksquashfs', ['-version']))
        ? undefined
        : 'mksquashfs is not installed (apt-get install squashfs-tools)',
    source: rootfs,
  },
  {
    name: 'containerfile',
    make: () => createContainerfileBuilder({ runner: execaRunner }),
    available: async () =>
      (await findEngine(execaRunner)) ? undefined : 'no buildah, podman or docker engine here',
    source: async () => {
      const dir = await rootfs();
      const file = join(dir, 'Containerfile');
      await writeFile(file, 'FROM scratch\nCOPY etc /etc\n');
      return file;
    },
  },
];

for (const b of builders) {
  describe(`builder ${b.name}`, async () => {
    const missing = await b.available();
    test('builds an image whose manifest verifies', { skip: missing }, async () => {
      const out = await b.make().build({
        source: await b.source(),
        version: '3.0.0',
        outDir: await mkdtemp(join(tmpdir(), 'out-')),
        format: b.name.includes('squashfs') ? 'squashfs' : 'ext4',
      });
      const info = await stat(out.path);
      assert.ok(info.size > 2 * 1024 * 1024);
      const manifest = ArtifactManifest.parse(
        await manifestOf(out.path, { format: out.format, version: '3.0.0' }),
      );
      assert.equal(manifest.size, info.size);
    });
    test('the same input gives the same digest', { skip: missing }, async () => {
      const build = async () => {
        const src = await b.source();
        const out = await b.make().build({
          source: src,
          version: '3.0.0',
          outDir: await mkdtemp(join(tmpdir(), 'out-')),
          format: b.name.includes('squashfs') ? 'squashfs' : 'ext4',
        });
        return (await manifestOf(out.path, { format: out.format, version: '3.0.0' })).digest;
      };
      const first = await build();
      await new Promise((r) => setTimeout(r, 1100)); // a different wall-clock second
      assert.equal(await build(), first);
    });
    test('a missing source is a BuildError that says what to pass', async () => {
      await assert.rejects(
        b.make().build({
          source: '/nonexistent/src',
          version: '3.0.0',
          outDir: await mkdtemp(join(tmpdir(), 'out-')),
          format: 'ext4',
        }),
        (err: unknown) => err instanceof BuildError && /\/nonexistent\/src|no buildah/.test(err.message),
      );
    });
  });
}

test('oci - a reference must be pinned by digest', () => {
  const digest = `sha256:${'c'.repeat(64)}`;
  assert.deepEqual(pinOciReference(`quay.io/kairos/os:v3@${digest}`), {
    reference: 'quay.io/kairos/os:v3',
    digest,
  });
  assert.throws(() => pinOciReference('quay.io/kairos/os:v3'), /not pinned by digest/);
});

test('manifest - chunk digests cover the file exactly', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'manifest-'));
  const file = join(dir, 'img');
  await writeFile(file, Buffer.alloc(2.5 * 1024 * 1024, 9));
  await utimes(file, 1, 1);
  const m = await manifestOf(file, { format: 'raw', version: '1' }, 1024 * 1024);
  assert.deepEqual(
    m.chunks.map((c) => c.size),
    [1048576, 1048576, 524288],
  );
  assert.equal(m.chunks[0]?.digest, m.chunks[1]?.digest);
  assert.notEqual(m.chunks[0]?.digest, m.chunks[2]?.digest);
});
