import type { AgentState, Digest, Labels, NodeOutcome, Slot } from '../schema/index.ts';
import { emptyTrustState, type TrustState, type TrustStatus } from '../trust/reducer.ts';

/** Where a node stands in the rollout that last touched it. */
export type NodePhase =
  | 'pending'
  | 'commanded'
  | 'accepted'
  | 'fetched'
  | 'written'
  | 'armed'
  | 'rebooting'
  | 'booted'
  | 'health-passed'
  | 'health-failed'
  | 'committed'
  | 'fell-back'
  | 'rejected'
  | 'rolled-back';

/** The fleet's view of one node, built only from events. */
export interface NodeView {
  nodeId: string;
  labels: Labels;
  version: string;
  digest?: Digest | undefined;
  activeSlot: Slot;
  state: AgentState;
  /** Whether the agent last spoke through NATS or only through its peers. */
  mode: 'nats' | 'p2p';
  /**
   * The libp2p peer id of the node's enrolled key, shown while its latest registration says it
   * runs libp2p; signed plans pin the node to it. Never taken from the registration itself.
   */
  peerId?: string | undefined;
  /** The node's enrolment status; only enrolled nodes are rollout targets. */
  enrolment?: TrustStatus | undefined;
  /** What the node's slot driver installs, from its latest registration (older agents do not say). */
  installs?: ('file' | 'oci')[] | undefined;
  registeredAt: string;
  lastSeenAt: string;
  /** The version before the newest committed upgrade, what a rollback returns to. */
  previousVersion?: string | undefined;
  /** The rollout that last touched the node and how far it got. */
  rollout?: { rolloutId: string; phase: NodePhase; reason?: string | undefined } | undefined;
  /** Sequence of the last event applied to this node. */
  seq: number;
}

/** Status of a rollout as the projection knows it. */
export type RolloutStatus =
  'running' | 'paused' | 'succeeded' | 'failed' | 'aborted' | 'rolling-back' | 'rolled-back';

/** One wave of a rollout. */
export interface WaveView {
  index: number;
  nodeIds: string[];
  status: 'running' | 'passed' | 'failed' | 'approved';
  succeeded: number;
  failed: number;
}

/** A node's progress inside one rollout. */
export interface RolloutNodeView {
  wave: number;
  phase: NodePhase;
  outcome?: NodeOutcome | undefined;
  detail?: string | undefined;
}

/** The fleet's view of one rollout, built only from events. */
export interface RolloutView {
  rolloutId: string;
  status: RolloutStatus;
  version: string;
  imageDigest?: string | undefined;
  /** The OCI image this rollout's slot image was converted from, when it was. */
  converted?:
    | {
        reference: string;
        ociDigest: string;
        format: 'ext4' | 'squashfs';
        /** The RAUC bundle it was wrapped in: compatible and the sha256 of the signing certificate. */
        bundle?: { compatible: string; signer: string } | undefined;
      }
    | undefined;
  waves: WaveView[];
  /** Plan as given: waves text, concurrency and failure policy. */
  policy: { waves: string; maxUnavailable: number; onFailure: 'pause' | 'rollback'; approveWaves: boolean };
  targets: string[];
  nodes: Record<string, RolloutNodeView>;
  upgraded: number;
  failed: number;
  startedAt: string;
  updatedAt: string;
  finishedAt?: string | undefined;
  pauseReason?: string | undefined;
  seq: number;
}

/** The whole materialised projection. */
export interface Projection {
  nodes: Map<string, NodeView>;
  rollouts: Map<string, RolloutView>;
  /** Node identities and enrolment, from the trust reducer. */
  trust: TrustState;
  /** Sequence of the newest event applied. */
  lastSeq: number;
}

/** An empty projection (before sequence 1). */
export function emptyProjection(): Projection {
  return { nodes: new Map(), rollouts: new Map(), trust: emptyTrustState(), lastSeq: 0 };
}
