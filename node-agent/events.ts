import { randomUUID } from 'node:crypto';
import { EVENT_VERSION, type NodeEvent, type RejectReason } from '../schema/index.ts';
import type { Operation } from './journal-data.ts';
import { bootedImage, type SlotStatus } from './slot-drivers/driver.ts';

type EventType = NodeEvent['type'];
type EventOf<T extends EventType> = Extract<NodeEvent, { type: T }>;
/** The fields of an event beyond its envelope. */
export type EventFields<T extends EventType> = Omit<EventOf<T>, 'v' | 'id' | 'at' | 'type' | 'nodeId'>;

/** A new node event with a fresh id (the id is its Nats-Msg-Id, so a re-publish is dropped). */
export function nodeEvent<T extends EventType>(
  nodeId: string,
  type: T,
  fields: EventFields<T>,
  now = new Date(),
): EventOf<T> {
  return { v: EVENT_VERSION, id: randomUUID(), at: now.toISOString(), type, nodeId, ...fields } as EventOf<T>;
}

/** What a step found out, for the events that record it. */
export interface StepDetail {
  readonly reason?: string | undefined;
  /** The health check that failed. */
  readonly check?: string | undefined;
  /** The health checks that passed. */
  readonly checks?: readonly string[] | undefined;
  readonly bytes?: number | undefined;
  readonly rejectReason?: RejectReason | undefined;
}

/** Everything the transition's events are made from. */
export interface EventContext {
  readonly nodeId: string;
  readonly op: Operation;
  /** The slots as they are after the step (needed for NodeBooted, NodeFellBack, NodeRolledBack). */
  readonly status?: SlotStatus | undefined;
  readonly initialVersion: string;
  readonly detail: StepDetail;
  readonly now?: Date;
}

/** Builds the events a transition lists, in order, all tagged with the command's ids. */
export function eventsFor(types: readonly EventType[], ctx: EventContext): NodeEvent[] {
  const { op, detail } = ctx;
  const ids = { rolloutId: op.command.rolloutId, commandId: op.command.commandId };
  const slots = (): SlotStatus => {
    if (!ctx.status) throw new Error('events about the booted slot need the slot status');
    return ctx.status;
  };
  const running = () => bootedImage(slots(), ctx.initialVersion);
  const make = <T extends EventType>(type: T, fields: Omit<EventFields<T>, 'rolloutId' | 'commandId'>) =>
    nodeEvent(ctx.nodeId, type, { ...ids, ...fields } as unknown as EventFields<T>, ctx.now);
  const reason = detail.reason ?? op.failure ?? 'the upgrade did not complete';
  return types.map((type): NodeEvent => {
    switch (type) {
      case 'UpgradeCommandAccepted':
        return make(type, { command: op.command.type });
      case 'UpgradeCommandRejected':
        return make(type, { reason: detail.rejectReason ?? 'artifact-invalid', message: reason });
      case 'ArtifactFetched':
        return make(type, {
          digest: op.toDigest!,
          bytes: detail.bytes ?? 0,
          source: op.source ?? 'unknown',
        });
      case 'SlotWritten':
        return make(type, { slot: op.toSlot, digest: op.toDigest! });
      case 'TrialBootArmed':
        return make(type, { slot: op.toSlot });
      case 'NodeRebooting':
        // A fallback reboot goes back to the slot the node came from.
        return make(type, { slot: op.failure !== undefined ? op.fromSlot : op.toSlot });
      case 'NodeBooted':
        return make(type, {
          slot: slots().booted,
          ...running(),
          trial: op.kind === 'upgrade' && slots().booted === op.toSlot && slots().trial,
        });
      case 'HealthCheckPassed':
        return make(type, { checks: [...(detail.checks ?? [])] });
      case 'HealthCheckFailed':
        return make(type, { check: detail.check ?? 'booted-expected-slot', reason });
      case 'UpgradeCommitted':
        return make(type, {
          slot: op.toSlot,
          version: op.toVersion,
          ...(op.toDigest ? { digest: op.toDigest } : {}),
        });
      case 'NodeFellBack':
        return make(type, { slot: slots().booted, ...running(), reason });
      case 'NodeRolledBack':
        return make(type, { slot: slots().booted, ...running() });
      default:
        throw new Error(`a transition cannot emit ${type}`);
    }
  });
}
