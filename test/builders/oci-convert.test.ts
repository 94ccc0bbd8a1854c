// OCI images into slot images against a real registry, buildah, skopeo and umoci: layers applied
// in order with whiteouts, the same layers giving the same bytes, tags pinned, bad digests refused.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execaRunner } from '../../runtime/runner.ts';
import { createContainerfileBuilder } from '../../activities/builders/containerfile.ts';
import { formatOciReference, parseOciReference } from '../../activities/builders/oci.ts';
import { createOciBuilder } from '../../activities/builders/oci-convert.ts';
import { pushImage } from '../../activities/builders/oci-push.ts';
import { fetchManifest, OciReferenceError } from '../../activities/builders/oci-registry.ts';
import { startRegistry, type RegistryHandle } from '../helpers/servers.ts';
import {
  pushRootfs,
  readFromExt4,
  removePulledImages,
  writeBusyboxRootfs,
  writeContainerfile,
} from '../helpers/oci-images.ts';

let registry: RegistryHandle;
let work: string;
let base: string;

before(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), 'slotflow-oci-'));
  const rootfs = await writeBusyboxRootfs(join(work, 'base'), '1.0.0');
  base = (await pushRootfs(rootfs, `${registry.address}/test/base:1`)).reference;
});
after(async () => {
  if (registry) await removePulledImages(registry.address);
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const oci = createOciBuilder({ runner: execaRunner });

test('oci - a pushed rootfs is pinned by the digest the push printed, and its tag resolves to it', async () => {
  const ref = parseOciReference(base);
  assert.match(base, new RegExp(`^${registry.address}/test/base@sha256:[0-9a-f]{64}$`));
  const byTag = await fetchManifest({ ...ref, digest: undefined, tag: '1' });
  assert.equal(byTag.digest, ref.digest);
});

test('oci - layers apply in order with whiteouts; the RUN step file is in the slot image', async () => {
  const file = await writeContainerfile(join(work, 'app'), base, 'built by RUN');
  const built = await createContainerfileBuilder({ runner: execaRunner }).build({
    source: file,
    version: '2.0.0',
    outDir: join(work, 'out-ctr'),
    format: 'ext4',
  });
  assert.ok(built.containerImage, 'a buildah build leaves its image to push');
  const pushed = await pushImage(execaRunner, built.containerImage, `${registry.address}/test/app:2.0.0`);
  await execaRunner.run('buildah', ['rmi', built.containerImage], { timeoutMs: 60_000 });
  const out = await oci.build({
    source: pushed.reference,
    version: '2.0.0',
    outDir: join(work, 'conv'),
    format: 'ext4',
  });
  assert.equal(await readFromExt4(out.path, '/etc/from-run'), 'built by RUN');
  assert.equal(await readFromExt4(out.path, '/etc/removed-later'), undefined, 'the whiteout removed it');
  assert.match((await readFromExt4(out.path, '/etc/os-release')) ?? '', /VERSION_ID=1.0.0/);
  assert.match(out.builder, /^skopeo\+umoci\+mke2fs/);
  assert.deepEqual(
    await readdir(join(work, 'conv')),
    ['image.ext4'],
    'the pulled layout and rootfs are gone',
  );
});

test('oci - the same layers give the same bytes, whatever the version', async () => {
  const first = await oci.build({ source: base, version: '1.0.0', outDir: join(work, 'r1'), format: 'ext4' });
  const second = await oci.build({
    source: base,
    version: '9.9.9',
    outDir: join(work, 'r2'),
    format: 'ext4',
  });
  assert.ok((await readFile(first.path)).equals(await readFile(second.path)), 'byte-identical slot images');
});

test('oci - a digest the registry does not have is refused and nothing is written', async () => {
  const wrong = formatOciReference(
    { ...parseOciReference(base), digest: `sha256:${'0'.repeat(64)}` },
    'pinned',
  );
  const outDir = join(work, 'wrong');
  await assert.rejects(
    oci.build({ source: wrong, version: '2.0.0', outDir, format: 'ext4' }),
    (err: Error) =>
      err instanceof OciReferenceError &&
      /has no manifest with digest sha256:0{64}.*nothing was written/.test(err.message),
  );
  await assert.rejects(readdir(outDir), { code: 'ENOENT' });
});

test('oci - a tag without a digest is refused by the converter (rollouts pin it first)', async () => {
  await assert.rejects(
    oci.build({
      source: `${registry.address}/test/base:1`,
      version: '2.0.0',
      outDir: join(work, 'tag'),
      format: 'ext4',
    }),
    /not pinned by digest/,
  );
});

test('oci - references: registry, repository, tag and digest; loopback registries unqualified', () => {
  const digest = `sha256:${'a'.repeat(64)}`;
  assert.deepEqual(parseOciReference(`127.0.0.1:5322/os/base:2.0@${digest}`), {
    registry: '127.0.0.1:5322',
    repository: 'os/base',
    tag: '2.0',
    digest,
  });
  assert.deepEqual(parseOciReference('os:2', 'localhost:5000'), {
    registry: 'localhost:5000',
    repository: 'os',
    tag: '2',
    digest: undefined,
  });
  assert.throws(() => parseOciReference('Reg/OS:2'), /expected lowercase path components/);
  assert.throws(() => parseOciReference(`r.io/os@sha256:abc`), /expected sha256:<64 lowercase hex digits>/);
});
