import { join } from 'node:path';
import type { Logger } from 'pino';
import type { EnrolmentCertificate, SignedCommand, SignedPlan } from '../schema/index.ts';
import { verifyPlan } from '../signing/plan.ts';
import type { TrustedKeys } from '../signing/index.ts';
import { createRebootCoordinator, type RebootCoordinator } from './coordination/coordinator.ts';
import { createLeaseGossip, type LeaseGossip } from './coordination/lease-gossip.ts';
import { createChunkService, type ChunkService } from './chunks/service.ts';
import { createFileChunkStore } from './chunks/file-store.ts';
import type { ChunkStore } from './chunks/store.ts';
import { createEnrolmentExchange, type EnrolmentExchange } from './enrolment/exchange.ts';
import { loadOwnEnrolment } from './enrolment/own.ts';
import { createCommandGossip, type CommandGossipService } from './gossip/commands.ts';
import { createEventGossip, type EventGossipService } from './gossip/events.ts';
import { createEventRelay, type EventRelay, type RelayPublisher } from './gossip/event-relay.ts';
import { PlanRejectedError } from './errors.ts';
import { createP2pNode, type P2pNode, type P2pNodeInit } from './node.ts';

/** Everything an agent needs to run its side of the mesh. */
export interface SlotflowPeerInit extends P2pNodeInit {
  /** This agent's node id (the one in commands, events and plans). */
  readonly nodeId: string;
  /** Control-plane keys commands and plans must be signed with. */
  readonly trustedKeys: TrustedKeys;
  /**
   * This node's enrolment certificate (default: loaded from `<dataDir>/enrolment.json`). Without
   * one the node still receives commands, plans and chunks, but peers drop what it gossips.
   */
  readonly enrolment?: EnrolmentCertificate;
  /** Where chunks live (default: a file store in `<dataDir>/chunks`). */
  readonly chunkStore?: ChunkStore;
  /** A command for this node arrived over gossip (signature good, not expired). Verify it fully. */
  readonly onCommand?: (signed: SignedCommand) => void | Promise<void>;
  /** A signed plan arrived over gossip (verified). */
  readonly onPlan?: (signed: SignedPlan) => void | Promise<void>;
  /** Where to relay peers' events, when NATS is reachable at start. */
  readonly relayPublisher?: RelayPublisher;
  /** Intervals (defaults: commands 15 s, lease reports 5 s, chunk announcements 10 s). */
  readonly republish?: { commandsMs?: number; leaseMs?: number; chunksMs?: number };
}

/** An agent's libp2p side: node, gossip topics, event relay, chunk exchange, reboot turns. */
export interface SlotflowPeer {
  readonly nodeId: string;
  readonly peerId: string;
  readonly node: P2pNode;
  /** Enrolment certificates: this node's, presented to peers, and peers', verified. */
  readonly enrolment: EnrolmentExchange;
  readonly commands: CommandGossipService;
  readonly events: EventGossipService;
  readonly relay: EventRelay;
  readonly chunks: ChunkService;
  readonly lease: LeaseGossip;
  /** Builds the reboot coordinator for a signed plan (verified again here). */
  coordinator(signed: SignedPlan): RebootCoordinator;
  /** The node's addresses, `/p2p/<peer id>` included. */
  multiaddrs(): string[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Composition root of the p2p layer: creates the node and wires every service to it. */
export async function createSlotflowPeer(init: SlotflowPeerInit): Promise<SlotflowPeer> {
  const node = await createP2pNode(init);
  const log: Logger = node.log.child({ nodeId: init.nodeId });
  const own =
    init.enrolment ??
    (await loadOwnEnrolment({
      dataDir: init.dataDir,
      nodeId: init.nodeId,
      peerId: node.peerId,
      trustedKeys: init.trustedKeys,
    }));
  if (!own) {
    log.warn(
      { file: join(init.dataDir, 'enrolment.json') },
      'this node is not enrolled: peers drop the events and lease reports it gossips until it is',
    );
  }
  const enrolment = createEnrolmentExchange({
    node,
    trustedKeys: init.trustedKeys,
    own,
    log: log.child({ name: 'p2p:enrolment' }),
  });
  const commands = createCommandGossip({
    node,
    nodeId: init.nodeId,
    trustedKeys: init.trustedKeys,
    onCommand: init.onCommand,
    onPlan: init.onPlan,
    republishIntervalMs: init.republish?.commandsMs,
    log: log.child({ name: 'p2p:commands' }),
  });
  const events = createEventGossip({
    node,
    nodeId: init.nodeId,
    bindings: enrolment,
    log: log.child({ name: 'p2p:events' }),
  });
  const relay = createEventRelay({
    events,
    ...(init.relayPublisher ? { publisher: init.relayPublisher } : {}),
    log: log.child({ name: 'p2p:relay' }),
  });
  const chunks = createChunkService({
    node,
    store: init.chunkStore ?? createFileChunkStore(join(init.dataDir, 'chunks')),
    announceIntervalMs: init.republish?.chunksMs,
    enrolled: enrolment,
    log: log.child({ name: 'p2p:chunks' }),
  });
  const lease = createLeaseGossip({
    node,
    nodeId: init.nodeId,
    bindings: enrolment,
    file: join(init.dataDir, 'lease-reports.json'),
    republishIntervalMs: init.republish?.leaseMs,
    log: log.child({ name: 'p2p:lease' }),
  });

  return {
    nodeId: init.nodeId,
    peerId: node.peerId,
    node,
    enrolment,
    commands,
    events,
    relay,
    chunks,
    lease,
    multiaddrs: () => node.multiaddrs(),
    coordinator(signed) {
      const result = verifyPlan(signed, { trustedKeys: init.trustedKeys });
      if (!result.ok) {
        throw new PlanRejectedError(
          `cannot coordinate reboots on this plan (${result.reason}): ${result.message}`,
        );
      }
      return createRebootCoordinator({
        plan: result.plan,
        nodeId: init.nodeId,
        lease,
        log: log.child({ name: 'p2p:coordinator', rolloutId: result.plan.rolloutId }),
      });
    },
    async start() {
      // Ready to present the certificate before the first peer connects and asks for it.
      await enrolment.start();
      await node.start();
      commands.start();
      events.start();
      relay.start();
      await lease.start();
      await chunks.start();
    },
    async stop() {
      commands.stop();
      events.stop();
      lease.stop();
      await relay.stop();
      await chunks.stop();
      await enrolment.stop();
      await node.stop();
    },
  };
}
