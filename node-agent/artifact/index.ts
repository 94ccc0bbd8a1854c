// Public surface of artifact fetching: sources (NATS Object Store, directory, HTTP) and the verifying fetcher.
import type { NatsConnection } from '@nats-io/nats-core';
import type { ArtifactSourceConfig } from '../../schema/index.ts';
import { createDirSource } from './dir-source.ts';
import { createHttpSource } from './http-source.ts';
import { createNatsSource } from './nats-source.ts';
import type { ArtifactSource } from './source.ts';

export { createDirSource } from './dir-source.ts';
export { createHttpSource, imageUrl } from './http-source.ts';
export { createNatsSource } from './nats-source.ts';
export { fetchImage, type FetchRequest, type FetchResult } from './fetcher.ts';
export { digestHex, type ArtifactSource } from './source.ts';
export { sha256Of, verifiedPrefix, verifyImageFile } from './verify.ts';

/** The configured sources, in order. */
export function createArtifactSources(
  configs: readonly ArtifactSourceConfig[],
  connection: () => Promise<NatsConnection>,
): ArtifactSource[] {
  return configs.map((c) => {
    switch (c.type) {
      case 'nats':
        return createNatsSource(connection, c.bucket);
      case 'dir':
        return createDirSource(c.path);
      case 'http':
        return createHttpSource(c.url);
    }
  });
}
