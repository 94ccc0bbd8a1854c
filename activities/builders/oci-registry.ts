import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Digest } from '../../schema/index.ts';
import type { Runner } from '../../runtime/runner.ts';
import { BuildError } from './builder.ts';
import { sha256Of } from './manifest.ts';
import { formatOciReference, isInsecureRegistry, type OciReference } from './oci.ts';

const MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];
const INDEX_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
];

const Descriptor = z.object({ mediaType: z.string().optional(), digest: z.string(), size: z.number() });
/** The parts of an image manifest a conversion reads: its config and layers, in order. */
export const ImageManifest = z.object({
  mediaType: z.string().optional(),
  config: Descriptor,
  layers: z.array(Descriptor),
});
export type ImageManifest = z.infer<typeof ImageManifest>;

/** A manifest as the registry served it, and the digest of exactly those bytes. */
export interface FetchedManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly bytes: Buffer;
}

/** A refused reference: the registry lacks it, or what it served is not what the digest names. */
export class OciReferenceError extends BuildError {
  override name = 'OciReferenceError';
}

function baseUrl(ref: OciReference): string {
  return `${isInsecureRegistry(ref.registry) ? 'http' : 'https'}://${ref.registry}/v2/${ref.repository}`;
}

/** An anonymous bearer token for a registry that asks for one (public registries do). */
async function anonymousToken(challenge: string, signal: AbortSignal): Promise<string | undefined> {
  const params = Object.fromEntries(
    [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]] as [string, string]),
  );
  if (!/^Bearer /i.test(challenge) || !params['realm']) return undefined;
  const url = new URL(params['realm']);
  for (const key of ['service', 'scope']) if (params[key]) url.searchParams.set(key, params[key]);
  const response = await fetch(url, { signal });
  if (!response.ok) return undefined;
  const body = (await response.json()) as { token?: string; access_token?: string };
  return body.token ?? body.access_token;
}

/**
 * Fetches a manifest by tag or digest through the distribution API and hashes the bytes as
 * served, so a pinned digest is checked by us and not only by the registry.
 */
export async function fetchManifest(ref: OciReference, timeoutMs = 30_000): Promise<FetchedManifest> {
  const name = formatOciReference(ref);
  const target = ref.digest ?? ref.tag ?? 'latest';
  const url = `${baseUrl(ref)}/manifests/${target}`;
  const signal = AbortSignal.timeout(timeoutMs);
  const headers: Record<string, string> = { accept: [...MANIFEST_TYPES, ...INDEX_TYPES].join(', ') };
  let response: Response;
  try {
    response = await fetch(url, { headers, signal });
    const challenge = response.headers.get('www-authenticate');
    if (response.status === 401 && challenge) {
      await response.body?.cancel();
      const token = await anonymousToken(challenge, signal);
      if (token)
        response = await fetch(url, { headers: { ...headers, authorization: `Bearer ${token}` }, signal });
    }
  } catch (err) {
    throw new BuildError(
      `cannot reach the registry of ${name} (${url}): ${(err as Error).message}; is it running (slotflow stack status)?`,
      { cause: err },
    );
  }
  const bytes = Buffer.from(await response.arrayBuffer());
  if (response.status === 404) {
    throw new OciReferenceError(
      ref.digest
        ? `refused ${name}: registry ${ref.registry} has no manifest with digest ${ref.digest} in ${ref.repository}; expected the digest 'slotflow image build --push' printed (or a tag, which is pinned at start); nothing was written`
        : `refused ${name}: registry ${ref.registry} has no tag '${target}' in ${ref.repository}; push it first (slotflow image build --push ${ref.registry}/${ref.repository}:${target})`,
    );
  }
  if (!response.ok) {
    throw new BuildError(
      `registry ${ref.registry} answered HTTP ${response.status} for ${name}: ${bytes.toString('utf8').slice(0, 200)}`,
    );
  }
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
  if (ref.digest && digest !== ref.digest) {
    throw new OciReferenceError(
      `refused ${name}: the manifest the registry served hashes to ${digest}, not ${ref.digest}; the registry or the reference is wrong, nothing was written`,
    );
  }
  const mediaType = (response.headers.get('content-type') ?? '').split(';')[0]!.trim();
  return { digest, mediaType, bytes };
}

/** Parses an image manifest; an index (several platforms) is refused with what to pin instead. */
export function imageManifestOf(fetched: FetchedManifest, name: string): ImageManifest {
  let json: unknown;
  try {
    json = JSON.parse(fetched.bytes.toString('utf8'));
  } catch (err) {
    throw new BuildError(`the manifest of ${name} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const mediaType = (json as { mediaType?: string }).mediaType ?? fetched.mediaType;
  if (INDEX_TYPES.includes(mediaType) || Array.isArray((json as { manifests?: unknown }).manifests)) {
    throw new OciReferenceError(
      `${name} is an image index (one manifest per platform); expected one image's manifest: pin the digest of the platform's manifest (skopeo inspect --raw docker://${name})`,
    );
  }
  const parsed = ImageManifest.safeParse(json);
  if (!parsed.success) {
    throw new BuildError(
      `the manifest of ${name} is not an image manifest: ${z.prettifyError(parsed.error)}`,
    );
  }
  return parsed.data;
}

/**
 * Copies a pinned image into an OCI layout (`<layout>:img`) with skopeo, then checks every blob
 * the registry's manifest names (config and layers) against its digest and size.
 */
export async function pullToLayout(
  runner: Runner,
  ref: OciReference & { digest: Digest },
  manifest: ImageManifest,
  layout: string,
): Promise<void> {
  const name = formatOciReference(ref, 'pinned');
  const args = ['copy', '--quiet'];
  if (isInsecureRegistry(ref.registry)) args.push('--src-tls-verify=false');
  args.push(`docker://${name}`, `oci:${layout}:img`);
  const copied = await runner.run('skopeo', args, { timeoutMs: 3_600_000 });
  if (!copied.ok) {
    throw new BuildError(
      `skopeo could not pull ${name}: ${copied.failure}; install skopeo (apt-get install skopeo) and check the registry`,
    );
  }
  for (const blob of [manifest.config, ...manifest.layers]) {
    const hex = blob.digest.replace(/^sha256:/, '');
    const path = join(layout, 'blobs', 'sha256', hex);
    let got: { digest: string; size: number };
    try {
      got = await sha256Of(createReadStream(path, { highWaterMark: 4 * 1024 * 1024 }));
    } catch (err) {
      throw new BuildError(`blob ${blob.digest} of ${name} is missing from the pulled layout`, {
        cause: err,
      });
    }
    if (got.digest !== blob.digest || got.size !== blob.size) {
      throw new OciReferenceError(
        `blob ${blob.digest} of ${name} (${blob.size} bytes) arrived as ${got.digest} (${got.size} bytes); refused, nothing was written`,
      );
    }
  }
}

/** Reads the digest buildah or skopeo wrote with `--digestfile`. */
export async function readDigestFile(path: string): Promise<Digest> {
  const text = (await readFile(path, 'utf8')).trim();
  if (!/^sha256:[0-9a-f]{64}$/.test(text))
    throw new BuildError(`${path} holds '${text}', expected a sha256 digest`);
  return text as Digest;
}
