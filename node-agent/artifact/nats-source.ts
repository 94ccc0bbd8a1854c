import { DeliverPolicy, jetstream, type Consumer, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Objm, setSha256Backend, type ObjectInfo } from '@nats-io/obj';
import type { ArtifactManifest } from '../../schema/index.ts';
import { ArtifactInvalidError, ArtifactUnavailableError } from '../errors.ts';
import type { ArtifactSource } from './source.ts';

// The pure-JS hash is several times slower than node:crypto for the object store's own digest.
setSha256Backend('native');

/** Messages fetched per pull; the object store keeps 128 KiB per message. */
const BATCH = 64;
/** A pull that brings nothing this many times in a row means the object is incomplete. */
const EMPTY_PULLS = 3;

/**
 * Finds where byte `offset` lies among the object's chunk messages without downloading them:
 * a headers-only pass reads each message's size (Nats-Msg-Size).
 */
async function locate(
  js: JetStreamClient,
  stream: string,
  subject: string,
  offset: number,
): Promise<{ seq: number; skip: number }> {
  const consumer = await js.consumers.get(stream, { filter_subjects: subject, headers_only: true });
  let seen = 0;
  for (let empty = 0; empty < EMPTY_PULLS;) {
    const batch = await consumer.fetch({ max_messages: 1000, expires: 2000 });
    let got = 0;
    for await (const m of batch) {
      got++;
      const size = Number(m.headers?.get('Nats-Msg-Size') ?? 0);
      if (seen + size > offset) return { seq: m.seq, skip: offset - seen };
      seen += size;
    }
    empty = got === 0 ? empty + 1 : 0;
  }
  throw new ArtifactUnavailableError(`the object ends at ${seen} bytes, before offset ${offset}`);
}

async function* chunksFrom(consumer: Consumer, skipFirst: number, remaining: number, signal?: AbortSignal) {
  let skip = skipFirst;
  let left = remaining;
  for (let empty = 0; left > 0;) {
    signal?.throwIfAborted();
    const batch = await consumer.fetch({ max_messages: BATCH, expires: 5000 });
    let got = 0;
    for await (const m of batch) {
      got++;
      let data = m.data;
      if (skip > 0) {
        data = data.subarray(Math.min(skip, data.length));
        skip = 0;
      }
      left -= data.length;
      if (data.length > 0) yield data;
      if (left <= 0) break;
    }
    empty = got === 0 ? empty + 1 : 0;
    if (empty >= EMPTY_PULLS) {
      throw new ArtifactUnavailableError(`the object stopped delivering with ${left} bytes missing`);
    }
  }
}

/**
 * Images in a NATS Object Store bucket, named by digest. Reads the object's chunk messages with
 * an ordered consumer, so a resumed download starts at the message that holds the offset.
 */
export function createNatsSource(connection: () => Promise<NatsConnection>, bucket: string): ArtifactSource {
  return {
    name: `nats:${bucket}`,
    async open(manifest: ArtifactManifest, offset: number, signal?: AbortSignal) {
      const nc = await connection();
      let info: ObjectInfo | null;
      try {
        const os = await new Objm(nc).open(bucket);
        info = await os.info(manifest.digest);
      } catch (err) {
        throw new ArtifactUnavailableError(`cannot read object store ${bucket}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      if (!info || info.deleted) {
        throw new ArtifactUnavailableError(
          `no object ${manifest.digest} in ${bucket}; publish the image first`,
        );
      }
      if (info.size !== manifest.size) {
        throw new ArtifactInvalidError(
          `object ${manifest.digest} in ${bucket} has ${info.size} bytes, the manifest says ${manifest.size}`,
        );
      }
      const js = jetstream(nc);
      const stream = `OBJ_${bucket}`;
      const subject = `$O.${bucket}.C.${info.nuid}`;
      try {
        const start = offset > 0 ? await locate(js, stream, subject, offset) : { seq: 0, skip: 0 };
        const consumer = await js.consumers.get(stream, {
          filter_subjects: subject,
          ...(start.seq > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start.seq } : {}),
        });
        return chunksFrom(consumer, start.skip, manifest.size - offset, signal);
      } catch (err) {
        if (err instanceof ArtifactUnavailableError) throw err;
        throw new ArtifactUnavailableError(
          `cannot read ${manifest.digest} from ${bucket}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
    },
  };
}
