import { createReadStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { Objm, setSha256Backend, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  ArtifactManifest,
  IMAGES_BUCKET,
  type ImageRequest,
  type ImageSource,
  type RaucBundleRequest,
} from '../schema/index.ts';
import type { Runner } from '../runtime/runner.ts';
import { BuildError, type BuildOutput, type ImageBuilder } from './builders/builder.ts';
import { createContainerfileBuilder } from './builders/containerfile.ts';
import { DEFAULT_CHUNK_SIZE, manifestOf, sha256Of } from './builders/manifest.ts';
import { formatOciReference, parseOciReference, pinOciReference } from './builders/oci.ts';
import { createOciBuilder } from './builders/oci-convert.ts';
import { imageFromRootfs, pushImage, type PushedImage } from './builders/oci-push.ts';
import { fetchManifest } from './builders/oci-registry.ts';
import { certificateDigest, wrapInRaucBundle, type RaucBundleOutput } from './builders/rauc-bundle.ts';
import { createExt4Builder, createSquashfsBuilder } from './builders/rootfs.ts';

// The pure-JS hash is ~4x slower than node:crypto for the object store's digest.
setSha256Backend('native');

/** Error types workflows must not retry: the input is wrong, not the weather. */
export const ImageErrorType = {
  buildFailed: 'BuildFailed',
  digestMismatch: 'DigestMismatch',
  notFound: 'ImageNotFound',
} as const;

/** What the image build workflow builds: a rootfs, a Containerfile, or a pinned OCI image to convert. */
export type BuildRequest =
  | Extract<ImageRequest, { type: 'rootfs' | 'containerfile' }>
  | { type: 'oci'; reference: string; format: 'ext4' | 'squashfs'; rauc?: RaucBundleRequest };

/** What `image build --push` pushes: the Containerfile build's image, or a rootfs packed as one layer. */
export type PushSource = { type: 'container'; image: string } | { type: 'rootfs'; path: string };

function buildFailure(err: unknown): unknown {
  if (!(err instanceof BuildError)) return err;
  return ApplicationFailure.create({
    type: ImageErrorType.buildFailed,
    message: err.message,
    nonRetryable: true,
    cause: err,
  });
}

/** A built image on this worker's disk; `hostTaskQueue` routes the publish step to this host. */
export interface BuiltImage {
  manifest: ArtifactManifest;
  path: string;
  builder: string;
  hostTaskQueue: string;
  /** The container image a Containerfile build left in local storage, for a push. */
  containerImage?: string;
  /** The RAUC bundle the slot image was wrapped in: compatible and the signing certificate's digest. */
  bundle?: { compatible: string; signer: string };
}

export interface ImageActivityDeps {
  nc: NatsConnection;
  runner: Runner;
  /** Where builds are written: `<home>/builds`. */
  buildsDir: string;
  hostTaskQueue: string;
}

async function openImages(nc: NatsConnection): Promise<ObjectStore> {
  return new Objm(nc).create(IMAGES_BUCKET, { description: 'slotflow slot images, named by sha256 digest' });
}

function heartbeatWhile<T>(work: Promise<T>): Promise<T> {
  const timer = setInterval(() => Context.current().heartbeat(), 5000);
  return work.finally(() => clearInterval(timer));
}

/** Image activities: build from a rootfs or Containerfile, pin an OCI reference, publish and verify. */
export function createImageActivities(deps: ImageActivityDeps) {
  const builders: Record<'rootfs-ext4' | 'rootfs-squashfs' | 'containerfile' | 'oci', ImageBuilder> = {
    'rootfs-ext4': createExt4Builder(deps),
    'rootfs-squashfs': createSquashfsBuilder(deps),
    containerfile: createContainerfileBuilder(deps),
    oci: createOciBuilder(deps),
  };

  return {
    /** Builds a slot image and hashes it into a chunk manifest. */
    async buildImage(input: {
      buildId: string;
      request: BuildRequest;
      version: string;
      chunkSize?: number;
    }): Promise<BuiltImage> {
      const builder =
        input.request.type === 'containerfile'
          ? builders.containerfile
          : input.request.type === 'oci'
            ? builders.oci
            : input.request.format === 'squashfs'
              ? builders['rootfs-squashfs']
              : builders['rootfs-ext4'];
      const source = input.request.type === 'oci' ? input.request.reference : input.request.path;
      const outDir = join(deps.buildsDir, input.buildId);
      await mkdir(outDir, { recursive: true });
      try {
        const rauc = input.request.rauc;
        const out = await heartbeatWhile(
          builder
            .build({
              source,
              version: input.version,
              outDir,
              format: input.request.type === 'containerfile' ? 'ext4' : input.request.format,
            })
            .then((image): Promise<BuildOutput | RaucBundleOutput> | BuildOutput =>
              rauc ? wrapInRaucBundle(deps, image, { version: input.version, outDir }, rauc) : image,
            ),
        );
        const manifest = await manifestOf(
          out.path,
          { format: out.format, version: input.version },
          input.chunkSize ?? DEFAULT_CHUNK_SIZE,
        );
        return {
          manifest,
          path: out.path,
          builder: out.builder,
          hostTaskQueue: deps.hostTaskQueue,
          ...('containerImage' in out && out.containerImage ? { containerImage: out.containerImage } : {}),
          ...(rauc
            ? { bundle: { compatible: rauc.compatible, signer: await certificateDigest(rauc.cert) } }
            : {}),
        };
      } catch (err) {
        throw buildFailure(err);
      }
    },

    /**
     * Pins an OCI reference: a tag is resolved to the digest of the manifest it names now; a
     * digest is checked against the manifest the registry serves. Refused before anything is sent.
     */
    async resolveOciImage(input: { reference: string }): Promise<{ reference: string; digest: string }> {
      try {
        const ref = parseOciReference(input.reference, process.env['SLOTFLOW_REGISTRY']);
        const fetched = await fetchManifest(ref);
        return {
          reference: formatOciReference({ ...ref, digest: fetched.digest }, 'pinned'),
          digest: fetched.digest,
        };
      } catch (err) {
        throw buildFailure(err);
      }
    },

    /** Pushes the built image (or the rootfs as a one-layer image) to a registry; returns the pinned reference. */
    async pushOciImage(input: {
      buildId: string;
      source: PushSource;
      destination: string;
    }): Promise<PushedImage> {
      try {
        if (input.source.type === 'container')
          return await heartbeatWhile(pushImage(deps.runner, input.source.image, input.destination));
        // A rootfs becomes a one-layer image only for the push; local storage keeps nothing.
        const tag = `localhost/slotflow-push:${input.buildId.toLowerCase()}`;
        const image = await imageFromRootfs(deps.runner, input.source.path, tag);
        try {
          return await heartbeatWhile(pushImage(deps.runner, image, input.destination));
        } finally {
          await deps.runner.run('buildah', ['rmi', image], { timeoutMs: 60_000 });
        }
      } catch (err) {
        throw buildFailure(err);
      }
    },

    /** Checks an OCI reference is pinned by digest and describes it for the nodes. */
    async pinOciImage(input: {
      reference: string;
      version: string;
    }): Promise<Extract<ImageSource, { type: 'oci' }>> {
      try {
        const pinned = pinOciReference(input.reference);
        return { type: 'oci', reference: pinned.reference, digest: pinned.digest, version: input.version };
      } catch (err) {
        throw ApplicationFailure.create({
          type: ImageErrorType.buildFailed,
          message: (err as Error).message,
          nonRetryable: true,
        });
      }
    },

    /**
     * Puts the image (named by its digest) and its manifest into the object store, then reads the
     * image back and checks the digest, so nodes never get bytes the manifest does not describe.
     */
    async publishImage(input: {
      path: string;
      manifest: ArtifactManifest;
    }): Promise<{ bucket: string; object: string; digest: string }> {
      const os = await openImages(deps.nc);
      const name = input.manifest.digest;
      const existing = await os.info(name);
      if (!existing || existing.deleted || existing.size !== input.manifest.size) {
        const stream = Readable.toWeb(createReadStream(input.path)) as ReadableStream<Uint8Array>;
        await heartbeatWhile(os.put({ name, description: `slot image ${input.manifest.version}` }, stream));
      }
      await os.putBlob(
        { name: `manifest/${name}` },
        new TextEncoder().encode(JSON.stringify(input.manifest)),
      );
      const read = await os.get(name);
      if (!read)
        throw ApplicationFailure.create({
          type: ImageErrorType.notFound,
          message: `object ${name} vanished after publish`,
        });
      const back = await heartbeatWhile(sha256Of(read.data as unknown as AsyncIterable<Uint8Array>));
      if (back.digest !== input.manifest.digest || back.size !== input.manifest.size) {
        await os.delete(name).catch(() => undefined);
        throw ApplicationFailure.create({
          type: ImageErrorType.digestMismatch,
          message: `read back ${back.digest} (${back.size} bytes) from ${IMAGES_BUCKET}/${name}, expected ${input.manifest.digest} (${input.manifest.size} bytes)`,
        });
      }
      await rm(input.path, { force: true });
      return { bucket: IMAGES_BUCKET, object: name, digest: input.manifest.digest };
    },

    /** Finds the manifest of an image published earlier. */
    async lookupPublishedImage(input: { digest: string }): Promise<ArtifactManifest> {
      const os = await openImages(deps.nc);
      const blob = await os.getBlob(`manifest/${input.digest}`);
      if (!blob) {
        throw ApplicationFailure.create({
          type: ImageErrorType.notFound,
          message: `no published image ${input.digest} in ${IMAGES_BUCKET}; build it with 'slotflow image build' first`,
          nonRetryable: true,
        });
      }
      return ArtifactManifest.parse(JSON.parse(new TextDecoder().decode(blob)));
    },
  };
}
