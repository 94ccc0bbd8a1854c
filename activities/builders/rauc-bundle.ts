import { createHash } from 'node:crypto';
import { access, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RaucBundleRequest } from '../../schema/index.ts';
import { BuildError, type BuildOutput, type BuilderDeps } from './builder.ts';

/** `rauc bundle` runs mksquashfs (and veritysetup's hashing) over the image: give it time. */
const RAUC_BUNDLE_TIMEOUT_MS = 1_800_000;

/** A signed RAUC bundle on disk. */
export interface RaucBundleOutput {
  readonly path: string;
  readonly format: 'rauc';
  readonly builder: string;
}

async function requireFile(path: string, flag: string, what: string): Promise<void> {
  try {
    await access(path);
  } catch (err) {
    throw new BuildError(
      `${flag} ${path} cannot be read; pass ${what} (PEM), e.g. the pair 'slotflow keys rauc-init' makes for trials`,
      { cause: err },
    );
  }
}

/** The bundle's manifest.raucm: one image for the slot class, RAUC's INI syntax. */
export function raucManifest(
  image: Pick<BuildOutput, 'format'> & { filename: string },
  version: string,
  rauc: RaucBundleRequest,
): string {
  if (/[\n\r]/.test(version))
    throw new BuildError(
      `version ${JSON.stringify(version)} spans lines; a RAUC manifest needs a one-line version`,
    );
  return [
    '[update]',
    `compatible=${rauc.compatible}`,
    `version=${version}`,
    '',
    '[bundle]',
    `format=${rauc.bundleFormat}`,
    '',
    `[image.${rauc.slotClass}]`,
    `filename=${image.filename}`,
    '',
  ].join('\n');
}

/**
 * Wraps a built slot image into a RAUC bundle signed with the operator's key and certificate
 * (`rauc bundle --cert --key [--intermediate]`). RAUC on the node checks the signature against
 * its keyring and the `compatible` against its system.conf before it writes a byte.
 */
export async function wrapInRaucBundle(
  { runner }: BuilderDeps,
  image: BuildOutput,
  input: { readonly version: string; readonly outDir: string },
  rauc: RaucBundleRequest,
): Promise<RaucBundleOutput> {
  await requireFile(rauc.cert, '--rauc-cert', 'the signing certificate');
  await requireFile(rauc.key, '--rauc-key', 'its private key');
  if (rauc.intermediate) await requireFile(rauc.intermediate, '--rauc-intermediate', 'the intermediate');
  const content = join(input.outDir, 'rauc-content');
  const out = join(input.outDir, 'bundle.raucb');
  await rm(content, { recursive: true, force: true });
  await rm(out, { force: true });
  await mkdir(content, { recursive: true });
  try {
    const filename = `${rauc.slotClass}.${image.format}`;
    await rename(image.path, join(content, filename));
    await writeFile(
      join(content, 'manifest.raucm'),
      raucManifest({ ...image, filename }, input.version, rauc),
    );
    const result = await runner.run(
      'rauc',
      [
        'bundle',
        `--cert=${rauc.cert}`,
        `--key=${rauc.key}`,
        ...(rauc.intermediate ? [`--intermediate=${rauc.intermediate}`] : []),
        content,
        out,
      ],
      { timeoutMs: RAUC_BUNDLE_TIMEOUT_MS },
    );
    if (!result.ok) {
      throw new BuildError(
        `rauc bundle could not make the ${rauc.bundleFormat} bundle: ${result.failure}; check that --rauc-key is the key of --rauc-cert, and that rauc is installed (apt-get install rauc; verity bundles need rauc 1.5+)`,
      );
    }
    const version = await runner.run('rauc', ['--version'], { timeoutMs: 10_000 });
    const tool = /rauc [\d.]+/.exec(version.stdout)?.[0] ?? 'rauc';
    return { path: out, format: 'rauc', builder: `${image.builder}+${tool}` };
  } finally {
    await rm(content, { recursive: true, force: true });
  }
}

/** The signer of a bundle as recorded in events: `sha256:` of the signing certificate file's bytes. */
export async function certificateDigest(certPath: string): Promise<string> {
  try {
    return `sha256:${createHash('sha256')
      .update(await readFile(certPath))
      .digest('hex')}`;
  } catch (err) {
    throw new BuildError(`--rauc-cert ${certPath} cannot be read; pass the signing certificate (PEM)`, {
      cause: err,
    });
  }
}
