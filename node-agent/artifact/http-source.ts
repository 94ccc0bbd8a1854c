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

/**
 * What is wrong with a 206's Content-Range, if anything: it must say the mirror sends the bytes
 * from `offset` to the end of the image. A mirror that sends another range (a caching proxy's
 * bug, a different file under the name) would otherwise show up only as a chunk with the wrong
 * digest, which points at the image rather than at the mirror.
 */
function rangeProblem(header: string | null, offset: number, size: number): string | undefined {
  const expected = `expected Content-Range: bytes ${offset}-${size - 1}/${size}`;
  if (header === null) return `a partial answer without Content-Range; ${expected}`;
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim());
  if (!m) return `Content-Range ${JSON.stringify(header)}, which is not a byte range; ${expected}`;
  const [, first, last, total] = m;
  if (Number(first) !== offset || Number(last) !== size - 1 || (total !== '*' && Number(total) !== size)) {
    return `Content-Range ${header}; ${expected} (the mirror sends another part, or another file)`;
  }
  return undefined;
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
      if (response.status === 206) {
        const problem = rangeProblem(response.headers.get('content-range'), offset, manifest.size);
        if (problem) {
          await response.body?.cancel();
          throw new ArtifactInvalidError(`${url} answered the request for bytes=${offset}- with ${problem}`);
        }
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
