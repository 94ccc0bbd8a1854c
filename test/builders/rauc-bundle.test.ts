// `image build --format rauc`: the slot image wrapped in a RAUC bundle by the real `rauc bundle`,
// read back with the real `rauc info` against the keyring a node would hold.
import { createHash, randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuildError } from '../../activities/builders/builder.ts';
import { raucManifest, wrapInRaucBundle } from '../../activities/builders/rauc-bundle.ts';
import { createExt4Builder } from '../../activities/builders/rootfs.ts';
import { execaRunner } from '../../runtime/runner.ts';
import { RaucBundleRequest } from '../../schema/index.ts';
import { createRaucPki, raucMissing } from '../agent/rauc-machine.ts';
import { runCli } from '../helpers/cli.ts';

const skip = (await raucMissing()) ?? false;
const work = await mkdtemp(join(tmpdir(), 'slotflow-rauc-bundle-'));
after(() => rm(work, { recursive: true, force: true }));

interface RaucInfo {
  compatible: string;
  version: string;
  format?: string;
  images: Record<string, { filename: string; checksum: string; size: number }>[];
}

async function rauc(args: string[]): Promise<string> {
  const r = await execaRunner.run('rauc', args, { timeoutMs: 60_000 });
  assert.ok(r.ok, r.failure);
  return r.stdout;
}

/** `rauc info` checks the signature against the keyring; its JSON lacks the format, its text has it. */
async function raucInfo(bundle: string, keyring: string): Promise<RaucInfo> {
  const info = JSON.parse(
    await rauc(['info', `--keyring=${keyring}`, '--output-format=json', bundle]),
  ) as RaucInfo;
  const text = await rauc(['info', `--keyring=${keyring}`, bundle]);
  return { ...info, format: /Bundle Format:\s+(\w+)/.exec(text)?.[1] };
}

async function ext4Image(name: string, version: string) {
  const root = join(work, name, 'rootfs');
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc/os-release'), `VERSION=${version}\n`);
  // Data that does not compress: a verity bundle must be larger than one 4 KiB block.
  await writeFile(join(root, 'etc/blob'), randomBytes(64 * 1024));
  const outDir = join(work, name, 'out');
  const image = await createExt4Builder({ runner: execaRunner }).build({
    source: root,
    version,
    outDir,
    format: 'ext4',
  });
  const sha256 = createHash('sha256')
    .update(await readFile(image.path))
    .digest('hex');
  return { image, outDir, sha256 };
}

for (const bundleFormat of ['verity', 'plain'] as const) {
  test(
    `rauc bundle - a ${bundleFormat} bundle carries the ext4 image, the version and the compatible, signed by the operator's key`,
    { skip },
    async () => {
      const pki = await createRaucPki(join(work, `pki-${bundleFormat}`), 'slotflow builds');
      const { image, outDir, sha256 } = await ext4Image(bundleFormat, '4.1.0');
      const out = await wrapInRaucBundle(
        { runner: execaRunner },
        image,
        { version: '4.1.0', outDir },
        RaucBundleRequest.parse({ compatible: 'acme-gateway', cert: pki.cert, key: pki.key, bundleFormat }),
      );
      assert.equal(out.format, 'rauc');
      assert.match(out.builder, /^mke2fs [\d.]+\+rauc [\d.]+$/);
      const info = await raucInfo(out.path, pki.caCert);
      assert.equal(info.compatible, 'acme-gateway');
      assert.equal(info.version, '4.1.0');
      assert.equal(info.format, bundleFormat);
      const images = info.images.flatMap((i) => Object.entries(i));
      assert.deepEqual(
        images.map(([slotClass, i]) => [slotClass, i.filename, i.checksum]),
        [['rootfs', 'rootfs.ext4', sha256]],
        'the bundle holds exactly the built image',
      );
    },
  );
}

test(
  'rauc bundle - the self-signed pair of keys rauc-init signs bundles RAUC verifies with that certificate as keyring',
  { skip },
  async () => {
    const out = join(work, 'trial-pair');
    const made = await runCli(['keys', 'rauc-init', '--out', out, '--json'], { SLOTFLOW_HOME: work });
    assert.equal(made.code, 0, made.stderr);
    const pair = JSON.parse(made.stdout) as { created: boolean; cert: string; key: string };
    assert.equal(pair.created, true);
    assert.equal((await stat(pair.key)).mode & 0o777, 0o600);
    const again = await runCli(['keys', 'rauc-init', '--out', out, '--json'], { SLOTFLOW_HOME: work });
    assert.equal(
      (JSON.parse(again.stdout) as { created: boolean }).created,
      false,
      'an existing pair is kept',
    );
    const { image, outDir } = await ext4Image('trial', '1.2.0');
    const bundle = await wrapInRaucBundle(
      { runner: execaRunner },
      image,
      { version: '1.2.0', outDir },
      RaucBundleRequest.parse({ compatible: 'acme', cert: pair.cert, key: pair.key }),
    );
    assert.equal((await raucInfo(bundle.path, pair.cert)).version, '1.2.0');
  },
);

test(
  'rauc bundle - a key that does not belong to the certificate, or a missing one, is a BuildError saying what to pass',
  { skip },
  async () => {
    const ours = await createRaucPki(join(work, 'pki-ours'), 'ours');
    const theirs = await createRaucPki(join(work, 'pki-theirs'), 'theirs');
    const { image, outDir } = await ext4Image('mismatch', '1.0.0');
    const request = (over: Partial<RaucBundleRequest>) =>
      RaucBundleRequest.parse({ compatible: 'acme', cert: ours.cert, key: ours.key, ...over });
    await assert.rejects(
      wrapInRaucBundle(
        { runner: execaRunner },
        image,
        { version: '1.0.0', outDir },
        request({ key: theirs.key }),
      ),
      (err: Error) =>
        err instanceof BuildError &&
        /rauc bundle could not make the verity bundle: .*--rauc-key is the key of --rauc-cert/.test(
          err.message,
        ),
    );
    await assert.rejects(
      wrapInRaucBundle(
        { runner: execaRunner },
        image,
        { version: '1.0.0', outDir },
        request({ cert: join(work, 'nowhere.pem') }),
      ),
      (err: Error) =>
        err instanceof BuildError &&
        /--rauc-cert .*nowhere\.pem cannot be read; pass the signing certificate/.test(err.message),
    );
  },
);

test('rauc bundle - a compatible or version that would break the manifest is refused', () => {
  assert.throws(
    () =>
      raucManifest(
        { format: 'ext4', filename: 'rootfs.ext4' },
        '1.0\n[image.evil]',
        RaucBundleRequest.parse({ compatible: 'a', cert: '/c', key: '/k' }),
      ),
    (err: Error) => err instanceof BuildError && /one-line version/.test(err.message),
  );
  const parsed = RaucBundleRequest.safeParse({ compatible: 'a\n[image.evil]', cert: '/c', key: '/k' });
  assert.equal(parsed.success, false);
  assert.match(parsed.error!.issues[0]!.message, /on one line/);
});
