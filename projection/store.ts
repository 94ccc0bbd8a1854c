import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { CONTROL_PLANE_ID, PROJECTION_BUCKET } from '../schema/index.ts';
import type { NodeTrust } from '../trust/reducer.ts';
import { emptyProjection, type NodeView, type Projection, type RolloutView } from './views.ts';

const META_KEY = 'meta';
/** Bumped when the views' shape changes; an older stored projection is rebuilt from the log. */
export const PROJECTION_FORMAT = 3;
/** The control-plane keys retired in the log (key id → stream sequence). */
const RETIRED_KEYS_KEY = 'keys.retired';

/** Opens (creating if needed) the KV bucket that holds the materialised projection. */
export async function openProjectionBucket(nc: NatsConnection, bucket = PROJECTION_BUCKET): Promise<KV> {
  return new Kvm(nc).create(bucket, { history: 1, description: 'slotflow fleet and rollout projections' });
}

export function nodeKey(nodeId: string): string {
  return `node.${nodeId}`;
}

export function rolloutKey(rolloutId: string): string {
  return `rollout.${rolloutId}`;
}

export function trustKey(nodeId: string): string {
  return `trust.${nodeId}`;
}

/**
 * Reads the stored projection. Returns an empty one (lastSeq 0) when the bucket has none or
 * holds an older format, so the caller replays from sequence 1.
 */
export async function loadProjection(kv: KV): Promise<Projection> {
  const projection = emptyProjection();
  const meta = await kv.get(META_KEY);
  if (!meta || meta.operation !== 'PUT') return projection;
  const { lastSeq, format } = meta.json<{ lastSeq: number; format: number }>();
  if (format !== PROJECTION_FORMAT) return projection;
  const keys: string[] = [];
  for await (const key of await kv.keys()) keys.push(key);
  for (const key of keys) {
    if (key === META_KEY) continue;
    const entry = await kv.get(key);
    if (!entry || entry.operation !== 'PUT') continue;
    if (key === RETIRED_KEYS_KEY) {
      const retired = entry.json<Record<string, number>>();
      if (Object.values(retired).some((seq) => seq > lastSeq)) return emptyProjection();
      projection.trust.retiredKeys = new Map(Object.entries(retired));
    } else if (key.startsWith('node.')) {
      const node = entry.json<NodeView>();
      projection.nodes.set(node.nodeId, node);
    } else if (key.startsWith('rollout.')) {
      const rollout = entry.json<RolloutView>();
      projection.rollouts.set(rollout.rolloutId, rollout);
    } else if (key.startsWith('trust.')) {
      const trust = entry.json<NodeTrust>();
      // Written past the stored sequence (a crash between writes): its replay window already
      // holds events the log would deliver again, so only a full replay gives exact verdicts.
      if ((trust.appliedSeq ?? 0) > lastSeq) return emptyProjection();
      projection.trust.nodes.set(trust.nodeId, trust);
    }
  }
  projection.lastSeq = lastSeq;
  return projection;
}

/** Writes changed entities, then the sequence they reflect (so a crash in between only re-applies). */
export async function saveChanges(
  kv: KV,
  projection: Projection,
  changes: { nodes: Iterable<string>; rollouts: Iterable<string>; trust?: Iterable<string> },
): Promise<void> {
  const writes: Promise<number>[] = [];
  for (const id of changes.nodes) {
    const node = projection.nodes.get(id);
    if (node) writes.push(kv.put(nodeKey(id), JSON.stringify(node)));
  }
  for (const id of changes.rollouts) {
    const rollout = projection.rollouts.get(id);
    if (rollout) writes.push(kv.put(rolloutKey(id), JSON.stringify(rollout)));
  }
  for (const id of changes.trust ?? []) {
    if (id === CONTROL_PLANE_ID) {
      writes.push(kv.put(RETIRED_KEYS_KEY, JSON.stringify(Object.fromEntries(projection.trust.retiredKeys))));
      continue;
    }
    const trust = projection.trust.nodes.get(id);
    if (trust) writes.push(kv.put(trustKey(id), JSON.stringify(trust)));
  }
  await Promise.all(writes);
  await kv.put(META_KEY, JSON.stringify({ lastSeq: projection.lastSeq, format: PROJECTION_FORMAT }));
}

/** Replaces the whole stored projection with the given one (used by rebuild). */
export async function replaceProjection(kv: KV, projection: Projection): Promise<void> {
  const keep = new Set<string>([META_KEY]);
  for (const id of projection.nodes.keys()) keep.add(nodeKey(id));
  for (const id of projection.rollouts.keys()) keep.add(rolloutKey(id));
  for (const id of projection.trust.nodes.keys()) keep.add(trustKey(id));
  if (projection.trust.retiredKeys.size > 0) keep.add(RETIRED_KEYS_KEY);
  const stale: string[] = [];
  for await (const key of await kv.keys()) if (!keep.has(key)) stale.push(key);
  await Promise.all(stale.map((k) => kv.purge(k)));
  await saveChanges(kv, projection, {
    nodes: projection.nodes.keys(),
    rollouts: projection.rollouts.keys(),
    trust: [
      ...projection.trust.nodes.keys(),
      ...(projection.trust.retiredKeys.size > 0 ? [CONTROL_PLANE_ID] : []),
    ],
  });
}

/** Plain-object form of a projection as it is stored (JSON: absent and undefined are one), for comparison and output. */
export function projectionToJson(projection: Projection): {
  lastSeq: number;
  nodes: Record<string, NodeView>;
  rollouts: Record<string, RolloutView>;
  trust: Record<string, NodeTrust>;
  retiredKeys: Record<string, number>;
} {
  const sorted = <T>(m: Map<string, T>) =>
    Object.fromEntries([...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
  const plain = {
    lastSeq: projection.lastSeq,
    nodes: sorted(projection.nodes),
    rollouts: sorted(projection.rollouts),
    trust: sorted(projection.trust.nodes),
    retiredKeys: sorted(projection.trust.retiredKeys),
  };
  return JSON.parse(JSON.stringify(plain)) as typeof plain;
}
