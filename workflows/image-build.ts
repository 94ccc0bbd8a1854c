import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { ArtifactManifest, ImageRequest } from '../schema/index.ts';
import { BUILD_ACTIVITY, PUBLISH_ACTIVITY } from './timeouts.ts';

const { buildImage } = proxyActivities<Activities>(BUILD_ACTIVITY);

export interface ImageBuildInput {
  buildId: string;
  request: Extract<ImageRequest, { type: 'rootfs' | 'containerfile' }>;
  version: string;
  chunkSize?: number;
}

export interface ImageBuildResult {
  manifest: ArtifactManifest;
  builder: string;
  bucket: string;
  object: string;
}

/**
 * Builds a slot image, then publishes it to the object store and verifies the read-back digest.
 * The publish step runs on the worker host that holds the built file (its own task queue).
 */
export async function imageBuildWorkflow(input: ImageBuildInput): Promise<ImageBuildResult> {
  const built = await buildImage.executeWithOptions(
    { ...BUILD_ACTIVITY, summary: `Build ${input.request.type} image ${input.version}` },
    [
      {
        buildId: input.buildId,
        request: input.request,
        version: input.version,
        ...(input.chunkSize ? { chunkSize: input.chunkSize } : {}),
      },
    ],
  );
  const { publishImage } = proxyActivities<Activities>({
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
  return {
    manifest: built.manifest,
    builder: built.builder,
    bucket: published.bucket,
    object: published.object,
  };
}
