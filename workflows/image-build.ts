import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities, BuildRequest, BuiltImage } from '../activities/index.ts';
import { IMAGES_BUCKET, type ArtifactManifest } from '../schema/index.ts';
import { BUILD_ACTIVITY, PUBLISH_ACTIVITY, PUSH_ACTIVITY, QUICK_ACTIVITY } from './timeouts.ts';

const { buildImage } = proxyActivities<Activities>(BUILD_ACTIVITY);
const { findConvertedImage, lookupPublishedImage, recordEvents } =
  proxyActivities<Activities>(QUICK_ACTIVITY);

export interface ImageBuildInput {
  buildId: string;
  /** A rootfs, a Containerfile, or a digest-pinned OCI image to convert into a slot image. */
  request: BuildRequest;
  version: string;
  chunkSize?: number;
  /** Also push the image to this OCI repository (`registry/repo[:tag]`); rootfs and Containerfile builds only. */
  push?: string;
}

export interface ImageBuildResult {
  manifest: ArtifactManifest;
  builder: string;
  bucket: string;
  object: string;
  /** The pushed OCI image: its digest-pinned reference and manifest digest. */
  pushed?: { reference: string; digest: string };
  /** For an OCI source: what was converted, and whether an earlier rollout's conversion was reused. */
  converted?: {
    reference: string;
    ociDigest: string;
    reused: boolean;
    /** The RAUC bundle the slot image is wrapped in, when one was asked for. */
    bundle?: { compatible: string; signer: string };
  };
}

/**
 * Builds a slot image, then publishes it to the object store and verifies the read-back digest;
 * with `push`, also pushes the OCI image to a registry. An OCI source already converted by an
 * earlier rollout (same digest and format) is not converted again. The publish and push steps
 * run on the worker host that holds the build (its own task queue).
 */
export async function imageBuildWorkflow(input: ImageBuildInput): Promise<ImageBuildResult> {
  const { request } = input;
  if (request.type === 'oci') {
    const ociDigest = request.reference.slice(request.reference.lastIndexOf('@') + 1);
    const bundle = request.rauc
      ? { compatible: request.rauc.compatible, cert: request.rauc.cert }
      : undefined;
    const earlier = await findConvertedImage({
      ociDigest,
      format: request.format,
      ...(bundle ? { bundle } : {}),
    });
    if (earlier) {
      const manifest = await lookupPublishedImage({ digest: earlier.digest }).catch(() => undefined);
      if (manifest) {
        return {
          manifest: { ...manifest, version: input.version },
          builder: `converted by rollout ${earlier.rolloutId}`,
          bucket: IMAGES_BUCKET,
          object: manifest.digest,
          converted: { reference: request.reference, ociDigest, reused: true },
        };
      }
    }
  }
  const built = await buildImage.executeWithOptions(
    { ...BUILD_ACTIVITY, summary: `Build ${request.type} image ${input.version}` },
    [
      {
        buildId: input.buildId,
        request,
        version: input.version,
        ...(input.chunkSize ? { chunkSize: input.chunkSize } : {}),
      },
    ],
  );
  const { publishImage, pushOciImage } = proxyActivities<Activities>({
    ...PUBLISH_ACTIVITY,
    taskQueue: built.hostTaskQueue,
  });
  const published = await publishImage.executeWithOptions(
    {
      ...PUBLISH_ACTIVITY,
      taskQueue: built.hostTaskQueue,
      summary: `Publish ${built.manifest.digest.slice(0, 19)}`,
    },
    [{ path: built.path, manifest: built.manifest }],
  );
  const result: ImageBuildResult = {
    manifest: built.manifest,
    builder: built.builder,
    bucket: published.bucket,
    object: published.object,
  };
  if (request.type === 'oci') {
    const ociDigest = request.reference.slice(request.reference.lastIndexOf('@') + 1);
    result.converted = {
      reference: request.reference,
      ociDigest,
      reused: false,
      ...(built.bundle ? { bundle: built.bundle } : {}),
    };
  }
  if (input.push) {
    const pushed = await pushOciImage.executeWithOptions(
      { ...PUSH_ACTIVITY, taskQueue: built.hostTaskQueue, summary: `Push to ${input.push}` },
      [{ buildId: input.buildId, source: pushSource(request, built), destination: input.push }],
    );
    result.pushed = { reference: pushed.reference, digest: pushed.digest };
    await recordEvents([
      {
        v: 1,
        id: `${input.buildId}:published`,
        at: new Date().toISOString(),
        type: 'ImagePublished',
        rolloutId: input.buildId,
        digest: built.manifest.digest,
        bucket: published.bucket,
        object: published.object,
        pushed: result.pushed,
      },
    ]);
  }
  return result;
}

function pushSource(
  request: BuildRequest,
  built: BuiltImage,
): { type: 'container'; image: string } | { type: 'rootfs'; path: string } {
  if (request.type === 'rootfs') return { type: 'rootfs', path: request.path };
  if (request.type === 'containerfile' && built.containerImage)
    return { type: 'container', image: built.containerImage };
  throw ApplicationFailure.create({
    type: 'BuildFailed',
    message:
      request.type === 'oci'
        ? 'an OCI image is already in a registry; --push applies to --rootfs and --containerfile builds'
        : 'the Containerfile was not built with buildah, so there is no image to push; install buildah',
    nonRetryable: true,
  });
}
