// The trust gate's checkpoint in NATS KV: the gate's trust state at one stream sequence, so a
// worker resumes reading the log there instead of replaying it from sequence 1. The head is
// signed by a control-plane key and names the body by digest, so a value someone else wrote to
// the bucket is ignored (full replay), never trusted. Any doubt (missing, unreadable, another
// format version, another stream or trusted key set, a sequence the stream does not hold) means
// a full replay: the checkpoint only ever saves time.
import { createHash, sign, verify } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  EVENTS_STREAM,
  TRUST_CHECKPOINT_BUCKET,
  TRUST_CHECKPOINT_VERSION,
  TrustCheckpointBody,
  TrustCheckpointHead,
  canonicalBytes,
  describeIssues,
  type RejectionReason,
} from '../schema/index.ts';
import type { SigningKey, TrustedKeys } from '../signing/index.ts';
import type { EventLog } from '../eventlog/index.ts';
import type { NodeTrust, TrustState } from './reducer.ts';

const HEAD_KEY = 'head';
/** Below NATS's default 1 MiB max payload, with room for headers. */
const PART_BYTES = 512 * 1024;
const partKey = (seq: number, i: number) => `part.${seq}.${i}`;

/** The gate's state at `seq`, as a checkpoint holds it. */
export interface TrustSnapshot {
  seq: number;
  state: TrustState;
  /** Refusals at sequences the bridge may still ask about. */
  refused: Map<number, { reason: RejectionReason; message: string }>;
}

/** Where the gate keeps its checkpoint. */
export interface TrustCheckpointStore {
  /** The stored snapshot, or why there is none to use (then the gate replays from sequence 1). */
  load(): Promise<{ snapshot: TrustSnapshot } | { missing: string }>;
  save(snapshot: TrustSnapshot): Promise<void>;
}

/** Opens (creating if needed) the checkpoint bucket; the worker owns it. */
export async function openTrustCheckpointBucket(nc: NatsConnection): Promise<KV> {
  return new Kvm(nc).create(TRUST_CHECKPOINT_BUCKET, {
    history: 1,
    description: "slotflow event bridge's trust checkpoint (signed; written only by the worker)",
  });
}

const sortedKeyIds = (trusted: TrustedKeys) => [...trusted.keys()].sort();
const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/**
 * A checkpoint store over `kv`: writes heads signed with the current control-plane key, accepts
 * only heads signed by a key in `trustedKeys`, taken from the current events stream under the
 * same trusted key set.
 */
export function kvTrustCheckpoints(init: {
  kv: KV;
  log: EventLog;
  /** The control-plane key to sign with now (keys rotate). */
  signingKey: () => Promise<SigningKey>;
  trustedKeys: TrustedKeys;
}): TrustCheckpointStore {
  const { kv, log, trustedKeys } = init;
  const streamCreated = async () => (await log.jsm.streams.info(EVENTS_STREAM)).created;

  async function load(): Promise<{ snapshot: TrustSnapshot } | { missing: string }> {
    const entry = await kv.get(HEAD_KEY);
    if (!entry || entry.operation !== 'PUT') return { missing: 'no checkpoint stored yet' };
    let raw: unknown;
    try {
      raw = entry.json();
    } catch (err) {
      return { missing: `the checkpoint head is not JSON: ${(err as Error).message}` };
    }
    if ((raw as { v?: unknown } | null)?.v !== TRUST_CHECKPOINT_VERSION) {
      return {
        missing: `the checkpoint has format version ${String((raw as { v?: unknown } | null)?.v)}, this worker reads ${TRUST_CHECKPOINT_VERSION}`,
      };
    }
    const parsed = TrustCheckpointHead.safeParse(raw);
    if (!parsed.success) {
      return { missing: `malformed checkpoint head: ${describeIssues(parsed.error.issues, raw).join('; ')}` };
    }
    const head = parsed.data;
    const issuer = trustedKeys.get(head.issuer.keyId);
    const { issuer: _issuer, ...body } = head;
    if (
      !issuer ||
      !verify(null, canonicalBytes(body), issuer, Buffer.from(head.issuer.signature, 'base64'))
    ) {
      return {
        missing: `the checkpoint head is not signed by a trusted control-plane key (${head.issuer.keyId})`,
      };
    }
    if (head.trustedKeyIds.join(',') !== sortedKeyIds(trustedKeys).join(',')) {
      return { missing: 'the checkpoint was taken under another set of trusted control-plane keys' };
    }
    const info = await log.jsm.streams.info(EVENTS_STREAM);
    if (head.stream.name !== EVENTS_STREAM || head.stream.created !== info.created) {
      return {
        missing: `the checkpoint is of another ${EVENTS_STREAM} stream (created ${head.stream.created})`,
      };
    }
    if (head.seq > info.state.last_seq) {
      return {
        missing: `the checkpoint is at sequence ${head.seq}, the stream ends at ${info.state.last_seq}`,
      };
    }
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < head.parts; i++) {
      const part = await kv.get(partKey(head.seq, i));
      if (!part || part.operation !== 'PUT')
        return { missing: `checkpoint part ${i} of ${head.parts} is missing` };
      chunks.push(part.value);
    }
    const gz = Buffer.concat(chunks);
    if (gz.length !== head.bytes || sha256(gz) !== head.digest) {
      return { missing: 'the checkpoint body does not match the digest its head signs' };
    }
    let bodyRaw: unknown;
    try {
      bodyRaw = JSON.parse(gunzipSync(gz).toString('utf8'));
    } catch (err) {
      return { missing: `the checkpoint body is unreadable: ${(err as Error).message}` };
    }
    const stored = TrustCheckpointBody.safeParse(bodyRaw);
    if (!stored.success) {
      return {
        missing: `malformed checkpoint body: ${describeIssues(stored.error.issues, bodyRaw).join('; ')}`,
      };
    }
    const nodes = new Map<string, NodeTrust>();
    for (const n of stored.data.nodes) nodes.set(n.nodeId, { ...n });
    const refused = new Map(
      stored.data.refused.map((r) => [r.seq, { reason: r.reason, message: r.message }]),
    );
    const retiredKeys = new Map(Object.entries(stored.data.retiredKeys));
    return { snapshot: { seq: head.seq, state: { nodes, retiredKeys }, refused } };
  }

  async function save(snapshot: TrustSnapshot): Promise<void> {
    const previous = await kv.get(HEAD_KEY).catch(() => null);
    const body: TrustCheckpointBody = {
      nodes: [...snapshot.state.nodes.values()],
      retiredKeys: Object.fromEntries(snapshot.state.retiredKeys),
      refused: [...snapshot.refused].map(([seq, r]) => ({ seq, ...r })),
    };
    const gz = gzipSync(JSON.stringify(body));
    const parts = Math.max(1, Math.ceil(gz.length / PART_BYTES));
    for (let i = 0; i < parts; i++) {
      await kv.put(partKey(snapshot.seq, i), gz.subarray(i * PART_BYTES, (i + 1) * PART_BYTES));
    }
    const unsigned = {
      v: TRUST_CHECKPOINT_VERSION,
      stream: { name: EVENTS_STREAM, created: await streamCreated() },
      seq: snapshot.seq,
      trustedKeyIds: sortedKeyIds(trustedKeys),
      parts,
      bytes: gz.length,
      digest: sha256(gz),
      nodes: body.nodes.length,
      writtenAt: new Date().toISOString(),
    };
    const key = await init.signingKey();
    const signature = sign(null, canonicalBytes(unsigned), key.privateKey).toString('base64');
    await kv.put(HEAD_KEY, JSON.stringify({ ...unsigned, issuer: { keyId: key.keyId, signature } }));
    // The parts of the checkpoint the new head replaced.
    const old = previous?.operation === 'PUT' ? TrustCheckpointHead.safeParse(previous.json()) : undefined;
    if (old?.success && old.data.seq !== snapshot.seq) {
      for (let i = 0; i < old.data.parts; i++)
        await kv.purge(partKey(old.data.seq, i)).catch(() => undefined);
    }
  }

  return { load, save };
}
