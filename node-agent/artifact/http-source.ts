import type { ArtifactManifest } from '../../schema/index.ts';
import { ArtifactInvalidError, ArtifactUnavailableError } from '../errors.ts';
import { digestHex, type ArtifactSource } from './source.ts';

/** The URL of an image on a mirror: `{hex}`/`{digest}` filled in, or `<base>/<hex>.img`. */
export function imageUrl(base: string, digest: string): string {
  if (base.includes('{hex}') || base.includes('{digest}')) {
    return base.replaceAll('{hex}', digestHex(digest)).replaceAll('{digest}', encodeURIComponent(digest));
  }
  return `${base.replace(/\/+$/, '')}/${digestHex(digest)}.img`;
}

async function* skip(body: AsyncIterable<Uint8Array>, bytes: number): AsyncGenerator<Uint8Array> {
  let left = bytes;
  for await (const piece of body) {
    if (left >= piece.length) {
      left -= piece.length;
      continue;
    }
    yield left > 0 ? piece.subarray(left) : piece;
    left = 0;
  }
}

/** Images on an HTTP(S) mirror; a resumed download asks for the rest with a Range header. */
export function createHttpSource(base: string): ArtifactSource {
  return {
    name: `http:${base}`,
    async open(manifest: ArtifactManifest, offset: number, signal?: AbortSignal) {
      const url = imageUrl(base, manifest.digest);
      let response: Response;
      try {
        response = await fetch(url, {
          headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
          ...(signal ? { signal } : {}),
        });
      } catch (err) {
        throw new ArtifactUnavailableError(`cannot reach ${url}: ${(err as Error).message}`, { cause: err });
      }
      if (response.status !== 200 && response.status !== 206) {
        await response.body?.cancel();
        throw new ArtifactUnavailableError(`${url} answered HTTP ${response.status}`);
      }
      const length = Number(response.headers.get('content-length') ?? NaN);
      const expected = response.status === 206 ? manifest.size - offset : manifest.size;
      if (Number.isFinite(length) && length !== expected) {
        await response.body?.cancel();
        throw new ArtifactInvalidError(`${url} sends ${length} bytes, the manifest says ${expected}`);
      }
      if (!response.body) throw new ArtifactUnavailableError(`${url} sent no body`);
      const body = response.body as unknown as AsyncIterable<Uint8Array>;
      // A server that ignores Range sends everything again: drop what we already have.
      return response.status === 200 && offset > 0 ? skip(body, offset) : body;
    },
  };
}
