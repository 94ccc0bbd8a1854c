import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Digest } from '../../schema/index.ts';
import type { Runner } from '../../runtime/runner.ts';
import { BuildError, runTool } from './builder.ts';
import { formatOciReference, isInsecureRegistry, parseOciReference } from './oci.ts';
import { readDigestFile } from './oci-registry.ts';

/** An image in a registry, by the reference it was pushed to and the digest that pins it. */
export interface PushedImage {
  /** `registry/repo@sha256:…`: what `rollout start --image` takes. */
  readonly reference: string;
  /** As given, fully qualified: `registry/repo:tag`. */
  readonly pushedTo: string;
  readonly digest: Digest;
}

/** Packs a directory as a one-layer OCI image in local container storage, named `tag`. */
export async function imageFromRootfs(runner: Runner, rootfs: string, tag: string): Promise<string> {
  const ctr = await runTool(runner, 'buildah', ['from', 'scratch']);
  try {
    await runTool(runner, 'buildah', ['copy', ctr, `${rootfs}/.`, '/']);
    await runTool(runner, 'buildah', ['commit', '--quiet', ctr, tag]);
  } finally {
    await runner.run('buildah', ['rm', ctr], { timeoutMs: 60_000 });
  }
  return tag;
}

/** Pushes an image from local container storage and returns the digest-pinned reference. */
export async function pushImage(
  runner: Runner,
  localImage: string,
  destination: string,
): Promise<PushedImage> {
  const ref = parseOciReference(destination, process.env['SLOTFLOW_REGISTRY']);
  if (ref.digest) {
    throw new BuildError(
      `--push ${destination}: expected REPO[:TAG] without a digest (the digest is what the push yields)`,
    );
  }
  const target = { ...ref, tag: ref.tag ?? 'latest' };
  const pushedTo = formatOciReference(target);
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-push-'));
  try {
    const digestFile = join(dir, 'digest');
    const args = ['push', '--quiet', '--digestfile', digestFile];
    if (isInsecureRegistry(ref.registry)) args.push('--tls-verify=false');
    args.push(localImage, `docker://${pushedTo}`);
    const pushed = await runner.run('buildah', args, { timeoutMs: 3_600_000 });
    if (!pushed.ok) {
      throw new BuildError(
        `buildah could not push ${localImage} to ${pushedTo}: ${pushed.failure}; is the registry up (slotflow stack status)?`,
      );
    }
    const digest = await readDigestFile(digestFile);
    return { reference: formatOciReference({ ...target, digest }, 'pinned'), pushedTo, digest };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
