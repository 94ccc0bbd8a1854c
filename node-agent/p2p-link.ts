import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import {
  ChunkFetchError,
  LeaseForfeitedError,
  NotInPlanError,
  WaveGateFailedError,
  createModeSwitch,
  createPeerArtifactSource,
  createSlotflowPeer,
  importImage,
  loadMeshKey,
  MeshKeyError,
  natsRelayPublisher,
  watchNatsStatus,
  type ModeChange,
  type ModeSwitch,
  type SlotflowPeer,
} from '../p2p/index.ts';
import {
  PLANS_STREAM,
  PLANS_SUBJECTS,
  type AgentConfig,
  type ArtifactManifest,
  type NodeEvent,
  type SignedCommand,
  type SignedPlan,
} from '../schema/index.ts';
import type { TrustedKeys } from '../signing/index.ts';
import type { ArtifactSource } from './artifact/index.ts';
import { ArtifactUnavailableError, describeError } from './errors.ts';
import type { Journal } from './journal.ts';
import { planLists, type PlanBook } from './plans.ts';

/** What the agent may do about a reboot under a rollout plan. */
export type RebootTurn =
  /** No turn needed: the control plane coordinates, or the rollout has no plan for this node. */
  | { readonly type: 'free' }
  /** The turn is taken; the node must be back and healthy by `deadline`. */
  | { readonly type: 'go'; readonly deadline: number }
  /** The plan says this node must not reboot (turn forfeited, or earlier waves failed). */
  | { readonly type: 'refused'; readonly reason: string };

/** Counters of the peer-to-peer side, for the metrics endpoint. */
export interface P2pMetrics {
  readonly mode: 'nats' | 'p2p';
  readonly peers: number;
  readonly gossip: Readonly<Record<'commands' | 'events' | 'lease', { accepted: number; rejected: number }>>;
  /** Look-ups that found no enrolment certificate vouching for a peer. */
  readonly unenrolledPeers: number;
  readonly relayed: number;
  readonly uploadedBytes: number;
}

/** The agent's side of the peer-to-peer fallback. */
export interface P2pLink {
  readonly peer: SlotflowPeer;
  mode(): 'nats' | 'p2p';
  start(): Promise<void>;
  /** A NATS connection exists: follow its status, relay peers' events, read the plans. */
  attach(nc: NatsConnection): void;
  /** Re-gossips a command the node received from NATS. */
  gossipCommand(signed: SignedCommand): void;
  /** The peers as the last artifact source (first choice in p2p mode, see `natsSource`). */
  readonly artifactSource: ArtifactSource;
  /** An image fetched from anywhere: store its chunks and serve them to peers. */
  seed(manifest: ArtifactManifest, path: string): Promise<void>;
  /** Waits for this node's reboot turn when it has to take one (p2p mode, rollout with a plan). */
  rebootTurn(rolloutId: string, signal: AbortSignal): Promise<RebootTurn>;
  /** Tells peers this node is done with the rollout (after its trial boot, or without a reboot). */
  finishTurn(rolloutId: string, outcome: 'succeeded' | 'failed' | 'skipped'): Promise<void>;
  metrics(): P2pMetrics;
  stop(): Promise<void>;
}

export interface P2pLinkInit {
  readonly config: AgentConfig;
  readonly trustedKeys: TrustedKeys;
  readonly journal: Journal;
  readonly plans: PlanBook;
  readonly log: Logger;
  /** A command for this node arrived from a peer (still to be verified like any other). */
  readonly onCommand: (signed: SignedCommand) => void;
  /** A plan was newly kept (from NATS or a peer). */
  readonly onPlan: (signed: SignedPlan) => void;
  /** The mode changed (journal it as NodeModeChanged). */
  readonly onModeChange: (change: ModeChange) => void;
  /** Re-gossip the outbox this often in p2p mode (default 10 s). */
  readonly regossipMs?: number;
}

/**
 * Builds the libp2p peer and wires it to the agent: the mode switch fed by the NATS connection,
 * plans from NATS and gossip, the outbox gossiped in p2p mode, peers' events relayed to
 * JetStream, image chunks served and fetched, reboot turns under the plan.
 */
export async function createP2pLink(init: P2pLinkInit): Promise<P2pLink> {
  const { config, journal, plans, log } = init;
  const nodeId = config.nodeId;
  if (config.p2p.openMesh) log.warn('the mesh is open: any peer on the allowed networks may connect');
  let meshKey: Uint8Array | undefined;
  if (!config.p2p.openMesh) {
    if (!config.p2p.meshKey) {
      throw new MeshKeyError(
        'expected p2p.meshKey (--mesh-key FILE) for the closed mesh, got none; copy the control plane’s ' +
          'keys/mesh.psk to the node, or set p2p.openMesh: true to run a mesh any peer may join',
      );
    }
    meshKey = await loadMeshKey(config.p2p.meshKey);
  }
  const peer = await createSlotflowPeer({
    nodeId,
    dataDir: config.dataDir,
    listen: config.p2p.listen,
    announce: config.p2p.announce,
    bootstrap: config.p2p.bootstrap,
    mdns: config.p2p.mdns,
    ...(config.p2p.allowedNetworks ? { allowedNetworks: config.p2p.allowedNetworks } : {}),
    relay: config.p2p.relay,
    ...(meshKey ? { meshKey } : { openMesh: true }),
    trustedKeys: init.trustedKeys,
    onCommand: (signed) => init.onCommand(signed),
    onPlan: async (signed) => {
      const kept = await plans.offer(signed);
      if (kept) init.onPlan(kept);
    },
    log: log.child({ name: 'p2p' }),
  });

  let stopped = false;
  const gossiped = new Set<string>();
  const gossipEvents = async (events: readonly NodeEvent[]) => {
    for (const event of events) {
      await peer.events.publish(event).catch((err: unknown) => {
        log.debug({ err: describeError(err), event: event.id }, 'cannot gossip an event yet');
      });
      gossiped.add(event.id);
    }
  };

  const modeSwitch: ModeSwitch = createModeSwitch({
    graceMs: config.p2p.natsLossGrace,
    onChange: (change) => {
      log.info({ mode: change.mode, reason: change.reason }, 'mode changed');
      if (change.mode === 'p2p') {
        peer.relay.setPublisher(undefined);
        gossiped.clear();
      }
      init.onModeChange(change);
    },
  });
  // Until a connection says otherwise, NATS is out of reach (the grace timer starts now).
  modeSwitch.observe(false);

  // In p2p mode the outbox is gossiped as it grows, and again now and then for late peers.
  journal.onCommit(() => {
    if (modeSwitch.mode !== 'p2p') return;
    const fresh = journal.data.outbox.filter((e) => !gossiped.has(e.id));
    if (fresh.length > 0) void gossipEvents(fresh);
  });
  const regossip = setInterval(() => {
    if (modeSwitch.mode !== 'p2p') return;
    gossiped.clear();
    void gossipEvents(journal.data.outbox);
  }, init.regossipMs ?? 10_000);
  regossip.unref();

  async function followPlans(nc: NatsConnection): Promise<void> {
    const js = jetstream(nc);
    while (!stopped && !nc.isClosed()) {
      try {
        const consumer = await js.consumers.get(PLANS_STREAM, {
          filter_subjects: PLANS_SUBJECTS,
          deliver_policy: DeliverPolicy.LastPerSubject,
        });
        const messages = await consumer.consume();
        for await (const m of messages) {
          let raw: unknown;
          try {
            raw = m.json();
          } catch (err) {
            log.warn({ err: describeError(err), subject: m.subject }, 'a plan message is not JSON; skipped');
            continue;
          }
          const kept = await plans.offer(raw);
          if (!kept) continue;
          await peer.commands.publishPlan(kept).catch((err: unknown) => {
            log.debug({ err: describeError(err) }, 'cannot gossip the plan yet; it is re-gossiped later');
          });
          init.onPlan(kept);
        }
      } catch (err) {
        if (stopped || nc.isClosed()) return;
        log.debug({ err: describeError(err) }, 'plan consumer interrupted; retrying');
      }
      await sleep(2_000);
    }
  }

  /** Relays peers' events under this node's own relay subjects, the ones its credentials allow. */
  function attachRelay(nc: NatsConnection): void {
    peer.relay.setPublisher(natsRelayPublisher(nc, nodeId));
  }

  const peerSources = {
    nats: createChunkSource(peer, 60_000),
    p2p: createChunkSource(peer, config.fetchTimeout),
  };

  return {
    peer,
    mode: () => modeSwitch.mode,
    async start() {
      await peer.start();
      // Serve what this node still holds of the images its plans install.
      for (const signed of plans.all()) {
        const image = signed.plan.upgrade?.image;
        if (image?.type === 'artifact') await peer.chunks.provide(image.manifest).catch(() => undefined);
      }
      log.info({ peerId: peer.peerId, addrs: peer.multiaddrs() }, 'peer-to-peer link up');
    },
    attach(nc) {
      void watchNatsStatus(nc, modeSwitch).catch(() => undefined);
      attachRelay(nc);
      void followPlans(nc);
      void (async () => {
        for await (const s of nc.status()) {
          if (stopped) return;
          if (s.type === 'reconnect') attachRelay(nc);
          else if (s.type === 'disconnect') peer.relay.setPublisher(undefined);
        }
      })().catch(() => undefined);
    },
    gossipCommand(signed) {
      void peer.commands.publishCommand(signed).catch((err: unknown) => {
        log.debug({ err: describeError(err) }, 'cannot gossip the command yet; it is re-gossiped later');
      });
    },
    artifactSource: {
      name: 'p2p',
      open: (manifest, offset, signal) =>
        (modeSwitch.mode === 'p2p' ? peerSources.p2p : peerSources.nats).open(manifest, offset, signal),
    },
    async seed(manifest, path) {
      try {
        await importImage(peer.chunks.store, manifest, path);
        await peer.chunks.provide(manifest);
      } catch (err) {
        log.warn({ err: describeError(err), image: manifest.digest }, 'cannot serve the image to peers');
      }
    },
    async rebootTurn(rolloutId, signal) {
      // Free only when NATS is known to be there: the control plane then paced the command.
      if ((await modeSwitch.settled(signal)) !== 'p2p') return { type: 'free' };
      const signed = plans.get(rolloutId);
      if (!signed || !planLists(signed.plan, nodeId)) return { type: 'free' };
      try {
        const lease = await peer.coordinator(signed).acquire({
          signal,
          onWait: (reason) => log.info({ rolloutId, reason }, 'waiting for the reboot turn'),
        });
        return { type: 'go', deadline: lease.deadline };
      } catch (err) {
        if (err instanceof LeaseForfeitedError || err instanceof WaveGateFailedError) {
          return { type: 'refused', reason: err.message };
        }
        if (err instanceof NotInPlanError) return { type: 'free' };
        throw err;
      }
    },
    async finishTurn(rolloutId, outcome) {
      await peer.lease
        .publish({ v: 1, type: 'done', rolloutId, nodeId, at: new Date().toISOString(), outcome })
        .catch((err: unknown) => {
          log.debug({ err: describeError(err) }, 'cannot report the turn yet; it is re-gossiped later');
        });
    },
    metrics() {
      return {
        mode: modeSwitch.mode,
        peers: peer.node.libp2p.getPeers().length,
        gossip: {
          commands: { accepted: peer.commands.stats.accepted, rejected: peer.commands.stats.rejected },
          events: { accepted: peer.events.stats.accepted, rejected: peer.events.stats.rejected },
          lease: { accepted: peer.lease.stats.accepted, rejected: peer.lease.stats.rejected },
        },
        unenrolledPeers: peer.enrolment.stats.refused,
        relayed: peer.relay.stats.appended,
        uploadedBytes: peer.chunks.server.stats.bytesServed,
      };
    },
    async stop() {
      stopped = true;
      clearInterval(regossip);
      modeSwitch.stop();
      await peer.stop();
    },
  };
}

/** The peers as an artifact source; a fetch they cannot complete is "unavailable" to the fetcher. */
function createChunkSource(peer: SlotflowPeer, timeoutMs: number): ArtifactSource {
  const source = createPeerArtifactSource(peer.chunks, { fetchTimeoutMs: timeoutMs });
  return {
    name: source.name,
    async open(manifest, offset, signal) {
      try {
        return await source.open(manifest, offset, signal);
      } catch (err) {
        if (!(err instanceof ChunkFetchError)) throw err;
        throw new ArtifactUnavailableError(`peers cannot deliver ${manifest.digest}: ${err.message}`, {
          cause: err,
        });
      }
    },
  };
}
