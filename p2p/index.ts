// Public surface of slotflow's peer-to-peer layer (libp2p): the agent builds one SlotflowPeer.
export { createSlotflowPeer, type SlotflowPeer, type SlotflowPeerInit } from './peer.ts';
export { createP2pNode, DEFAULT_P2P_LISTEN, type P2pNode, type P2pNodeInit } from './node.ts';
export { loadOrCreatePeerKey } from './identity.ts';
export { allowedNetworks, DEFAULT_ALLOWED_NETWORKS, type AllowedNetworks } from './networks.ts';
export { createNetworkGater } from './gater.ts';
export * from './errors.ts';
export * from './topics.ts';
export { createCommandGossip, type CommandGossipService } from './gossip/commands.ts';
export { createEventGossip, type EventGossipService } from './gossip/events.ts';
export {
  createEventRelay,
  natsRelayPublisher,
  type EventRelay,
  type EventRelayStats,
  type RelayPublisher,
} from './gossip/event-relay.ts';
export type { PeerBindings, Vouch } from './gossip/bindings.ts';
export { createMeshKey, loadMeshKey, meshKeyPath, MESH_KEY_FILE } from './mesh-key.ts';
export {
  createEnrolmentExchange,
  type EnrolmentExchange,
  type EnrolmentStats,
} from './enrolment/exchange.ts';
export { createCertificateBook, type CertificateBook } from './enrolment/certificates.ts';
export { loadOwnEnrolment, ENROLMENT_FILE } from './enrolment/own.ts';
export type { TopicStats } from './gossip/topic.ts';
export { createChunkService, type ChunkService } from './chunks/service.ts';
export type { ChunkStore } from './chunks/store.ts';
export { sha256Digest } from './chunks/store.ts';
export { createFileChunkStore } from './chunks/file-store.ts';
export { createMemoryChunkStore } from './chunks/memory-store.ts';
export { importImage, assembleImage } from './chunks/image.ts';
export { createPeerArtifactSource } from './chunks/artifact-source.ts';
export type { FetchChunksOptions, FetchChunksReport } from './chunks/fetcher.ts';
export type { ChunkServerStats } from './chunks/server.ts';
export {
  createRebootCoordinator,
  type RebootCoordinator,
  type RebootLease,
} from './coordination/coordinator.ts';
export { createLeaseGossip, type LeaseGossip } from './coordination/lease-gossip.ts';
export { decide, timetable, type Decision, type Turn } from './coordination/schedule.ts';
export { createModeSwitch, Mode, type ModeChange, type ModeSwitch } from './mode-switch.ts';
export { watchNatsStatus } from './nats-watch.ts';
export { signPlan, verifyPlan, type PlanVerification } from '../signing/plan.ts';
