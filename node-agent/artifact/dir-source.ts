import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ArtifactManifest } from '../../schema/index.ts';
import { ArtifactInvalidError, ArtifactUnavailableError } from '../errors.ts';
import { digestHex, type ArtifactSource } from './source.ts';

/** Images in a local directory (USB stick, air-gapped mirror): `<dir>/<digest hex>.img`. */
export function createDirSource(dir: string): ArtifactSource {
  return {
    name: `dir:${dir}`,
    async open(manifest: ArtifactManifest, offset: number, signal?: AbortSignal) {
      const file = join(dir, `${digestHex(manifest.digest)}.img`);
      let size: number;
      try {
        size = (await stat(file)).size;
      } catch (err) {
        throw new ArtifactUnavailableError(
          `no image ${file} (${(err as NodeJS.ErrnoException).code ?? err})`,
          {
            cause: err,
          },
        );
      }
      if (size !== manifest.size) {
        throw new ArtifactInvalidError(`${file} has ${size} bytes, the manifest says ${manifest.size}`);
      }
      return createReadStream(file, {
        start: offset,
        highWaterMark: 1024 * 1024,
        ...(signal ? { signal } : {}),
      });
    },
  };
}
