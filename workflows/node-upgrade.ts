import { condition, patched, proxyActivities, setHandler, log } from '@temporalio/workflow';
import type { Activities, JetStreamReach, PeerFallback } from '../activities/index.ts';
import type { Digest, ImageSource, NodeEvent, NodeOutcome } from '../schema/index.ts';
import {
  NODE_SIGNAL_TYPES,
  commandIdFor,
  nodeEventSignal,
  nodeProgressQuery,
  type NodeProgressView,
} from './definitions.ts';
import {
  COMMAND_TTL_SLACK_MS,
  NODE_SILENCE_MS,
  OUTAGE_RECHECK_MAX_MS,
  PROBE_ACTIVITY,
  QUICK_ACTIVITY,
} from './timeouts.ts';

const { sendCommand, recordEvents } = proxyActivities<Activities>(QUICK_ACTIVITY);
const { checkJetStream, checkPeerFallback } = proxyActivities<Activities>(PROBE_ACTIVITY);

/** Marks histories written since node workflows ride out NATS outages and self-finished nodes. */
const OUTAGE_AWARE_PATCH = 'nats-outage-aware';
/** Marks histories written since node workflows wait for nodes whose site may be finishing peer to peer. */
const PEER_FALLBACK_PATCH = 'peer-fallback-aware';

/** Per-phase time limits in ms. */
export interface PhaseTimeouts {
  accept: number;
  write: number;
  reboot: number;
  health: number;
}

/** One node's step in a rollout: upgrade to the image, or (compensation) roll back. */
export interface NodeUpgradeInput {
  rolloutId: string;
  nodeId: string;
  wave: number;
  kind: 'upgrade' | 'rollback';
  image?: ImageSource;
  manifestDigest?: Digest;
  allowDowngrade?: boolean;
  /** For a rollback: the version the node ran before the rollout. */
  toVersion?: string;
  timeouts: PhaseTimeouts;
}

export interface NodeUpgradeResult {
  nodeId: string;
  outcome: NodeOutcome | 'rolled-back';
  detail?: string | undefined;
  version?: string | undefined;
}

// How far a node got, in the order an upgrade goes. Terminal events end the wait.
const RANK: Partial<Record<NodeEvent['type'], number>> = {
  UpgradeCommandAccepted: 1,
  ArtifactFetched: 2,
  SlotWritten: 3,
  TrialBootArmed: 4,
  NodeRebooting: 5,
  NodeBooted: 6,
  HealthCheckPassed: 7,
  HealthCheckFailed: 7,
};

/**
 * Sends one signed command and follows the node through its phases, each under its own time
 * limit. The node's events arrive as signals from the event bridge; duplicates (at-least-once
 * delivery) are ignored by event id.
 */
export async function nodeUpgradeWorkflow(input: NodeUpgradeInput): Promise<NodeUpgradeResult> {
  const commandId = commandIdFor(input.rolloutId, input.nodeId, input.kind);
  const seen = new Set<string>();
  const events: NodeEvent[] = [];
  let rank = 0;
  let terminal: NodeEvent | undefined;
  let phase = 'sending command';

  const onEvent = (event: NodeEvent) => {
    if (seen.has(event.id) || !('commandId' in event) || event.commandId !== commandId) return;
    seen.add(event.id);
    events.push(event);
    rank = Math.max(rank, RANK[event.type] ?? 0);
    if (
      ['UpgradeCommitted', 'NodeFellBack', 'UpgradeCommandRejected', 'NodeRolledBack'].includes(event.type)
    ) {
      terminal ??= event;
    }
  };
  for (const type of NODE_SIGNAL_TYPES) setHandler(nodeEventSignal(type), onEvent);
  setHandler(nodeProgressQuery, (): NodeProgressView => ({
    nodeId: input.nodeId,
    phase,
    events: events.map((e) => e.type),
    outcome: terminal?.type,
  }));

  const ttlMs = input.timeouts.accept + COMMAND_TTL_SLACK_MS;
  const base = { commandId, nodeId: input.nodeId, rolloutId: input.rolloutId, ttlMs };
  // A node that finished on its own (peer to peer, while NATS was away) has told us already.
  if (!terminal || !patched(OUTAGE_AWARE_PATCH)) {
    await sendCommand.executeWithOptions(
      {
        ...QUICK_ACTIVITY,
        summary: `${input.kind === 'upgrade' ? 'Upgrade' : 'Rollback'} command to ${input.nodeId}`,
      },
      [
        input.kind === 'upgrade'
          ? {
              ...base,
              type: 'Upgrade',
              image: input.image as ImageSource,
              manifestDigest: input.manifestDigest as Digest,
              allowDowngrade: input.allowDowngrade ?? false,
            }
          : {
              ...base,
              type: 'Rollback',
              ...(input.toVersion ? { toVersion: input.toVersion } : {}),
              // The rollout's rollback is the operator's signed allowance to go below the floor.
              allowDowngrade: true,
            },
      ],
    );
  }

  const phases: [string, number, number][] =
    input.kind === 'upgrade'
      ? [
          ['waiting for the node to accept', 1, input.timeouts.accept],
          ['fetching and writing the passive slot', 4, input.timeouts.write],
          ['rebooting into the trial slot', 6, input.timeouts.reboot],
          ['health checks', Number.POSITIVE_INFINITY, input.timeouts.health],
        ]
      : [
          ['waiting for the node to accept', 1, input.timeouts.accept],
          [
            'rebooting into the previous slot',
            Number.POSITIVE_INFINITY,
            input.timeouts.reboot + input.timeouts.health,
          ],
        ];

  /**
   * Whether a node that made no progress may be finishing the rollout peer to peer: it runs a
   * libp2p peer, the rollout's plan still lists it with the upgrade, and it has not been heard
   * from for a while (its site, not the worker, lost NATS). A node that is heard from is judged
   * by its progress alone.
   */
  async function judgeSilence(
    name: string,
  ): Promise<{ type: 'cut-off'; until: number } | { type: 'heard' | 'no-fallback' }> {
    let fallback: PeerFallback;
    try {
      fallback = await checkPeerFallback.executeWithOptions(
        { ...PROBE_ACTIVITY, summary: `No progress while ${name}: may the node be finishing peer to peer?` },
        [{ rolloutId: input.rolloutId, nodeId: input.nodeId }],
      );
    } catch (err) {
      log.warn('could not check the peer-to-peer fallback', {
        nodeId: input.nodeId,
        error: (err as Error).message,
      });
      return { type: 'no-fallback' };
    }
    const now = Date.now();
    const until = fallback.planExpiresAt ? Date.parse(fallback.planExpiresAt) : 0;
    if (!fallback.peerId || !(until > now)) return { type: 'no-fallback' };
    const heard =
      fallback.lastSeenAt !== undefined && now - Date.parse(fallback.lastSeenAt) <= NODE_SILENCE_MS;
    return heard ? { type: 'heard' } : { type: 'cut-off', until };
  }

  /**
   * Waits for the phase's goal. When the time limit passes, a NATS outage (now, or since the
   * wait began) is no verdict on the node: its events are held in its outbox or a peer's, so the
   * phase waits again. Nor is the silence of a node cut off with its site while the rollout's
   * plan lets it go on peer to peer: the phase waits until the plan expires, and once the node
   * is heard from again, one more time limit for its held events. Otherwise silence while
   * JetStream answered throughout times the node out.
   */
  async function waitFor(name: string, goal: number, timeout: number): Promise<boolean> {
    let wait = timeout;
    let away = false;
    for (;;) {
      const since = Date.now();
      if (await condition(() => terminal !== undefined || rank >= goal, wait)) return true;
      if (!patched(OUTAGE_AWARE_PATCH)) return false;
      let reach: JetStreamReach;
      try {
        reach = await checkJetStream.executeWithOptions(
          { ...PROBE_ACTIVITY, summary: `No progress while ${name}: is JetStream reachable?` },
          [{ since }],
        );
      } catch (err) {
        // No worker could answer: judge the node as before, by its silence alone.
        log.warn('could not check JetStream', { nodeId: input.nodeId, error: (err as Error).message });
        return false;
      }
      if (!reach.interrupted) {
        if (!patched(PEER_FALLBACK_PATCH)) return false;
        const silence = await judgeSilence(name);
        if (silence.type === 'cut-off') {
          log.info('node phase extended: the node is unreachable and its plan lets it go on peer to peer', {
            nodeId: input.nodeId,
            phase: name,
            planExpiresAt: new Date(silence.until).toISOString(),
          });
          phase = `${name} (node unreachable; it may be finishing peer to peer)`;
          wait = Math.min(wait * 2, Math.max(timeout, OUTAGE_RECHECK_MAX_MS), silence.until - Date.now());
          away = true;
          continue;
        }
        if (silence.type === 'heard' && away) {
          phase = `${name} (node is back; waiting for its held events)`;
          wait = timeout;
          away = false;
          continue;
        }
        return false;
      }
      log.info('node phase extended: NATS was unreachable', { nodeId: input.nodeId, phase: name, ...reach });
      if (reach.reachable) {
        phase = `${name} (NATS is back; waiting for the node's held events)`;
        wait = timeout;
      } else {
        phase = `${name} (NATS unreachable)`;
        wait = Math.min(wait * 2, Math.max(timeout, OUTAGE_RECHECK_MAX_MS));
      }
    }
  }

  let result: NodeUpgradeResult | undefined;
  for (const [name, goal, timeout] of phases) {
    phase = name;
    const reached = await waitFor(name, goal, timeout);
    if (terminal) break;
    if (!reached) {
      result = {
        nodeId: input.nodeId,
        outcome: 'timed-out',
        detail: `no progress within ${timeout} ms while ${name}`,
      };
      log.warn('node timed out', { nodeId: input.nodeId, phase: name });
      if (rank === 0) {
        // Never accepted: withdraw it, so a node that comes back late does not start alone.
        await sendCommand({
          commandId: commandIdFor(input.rolloutId, input.nodeId, 'cancel'),
          nodeId: input.nodeId,
          rolloutId: input.rolloutId,
          ttlMs,
          type: 'Cancel',
        });
      }
      break;
    }
  }
  if (!result) result = outcomeOf(input, terminal);
  phase = result.outcome;

  if (input.kind === 'upgrade') {
    await recordEvents.executeWithOptions(
      { ...QUICK_ACTIVITY, summary: `${input.nodeId}: ${result.outcome}` },
      [
        [
          {
            v: 1,
            id: `${commandId}:finished`,
            at: new Date().toISOString(),
            type: 'NodeUpgradeFinished',
            rolloutId: input.rolloutId,
            nodeId: input.nodeId,
            wave: input.wave,
            outcome: result.outcome === 'rolled-back' ? 'failed' : result.outcome,
            ...(result.detail ? { detail: result.detail } : {}),
          },
        ],
      ],
    );
  }
  return result;
}

function outcomeOf(input: NodeUpgradeInput, terminal: NodeEvent | undefined): NodeUpgradeResult {
  const nodeId = input.nodeId;
  switch (terminal?.type) {
    case 'UpgradeCommitted':
      return { nodeId, outcome: 'upgraded', version: terminal.version };
    case 'NodeFellBack':
      return { nodeId, outcome: 'fell-back', detail: terminal.reason, version: terminal.version };
    case 'UpgradeCommandRejected':
      return { nodeId, outcome: 'rejected', detail: `${terminal.reason}: ${terminal.message}` };
    case 'NodeRolledBack':
      return input.kind === 'rollback'
        ? { nodeId, outcome: 'rolled-back', version: terminal.version }
        : { nodeId, outcome: 'failed', detail: 'node rolled back during the upgrade' };
    default:
      return { nodeId, outcome: 'failed', detail: 'no result from the node' };
  }
}
