import type { JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { ApplicationFailure } from '@temporalio/common';
import type { EventLog } from '../eventlog/index.ts';
import { timetable } from '../p2p/coordination/schedule.ts';
import { catchUp, loadProjection } from '../projection/index.ts';
import {
  PLAN_VERSION,
  PLANS_STREAM,
  RolloutPlan,
  SchemaError,
  parseWith,
  planSubject,
  type PlanUpgrade,
  type Threshold,
} from '../schema/index.ts';
import { signPlan, trustKeys, type SigningKeySource, type TrustedKeys } from '../signing/index.ts';
import { verifyEnrolment } from '../signing/node-identity.ts';
import type { NodeView } from '../projection/index.ts';
import type { NodeTrust } from '../trust/reducer.ts';
import { windowAround } from '../workflows/planning.ts';

/** A plan never lives shorter than this, so a site that loses NATS right away still has time. */
export const MIN_PLAN_LIFETIME_MS = 3_600_000;

/** The plan as the rollout describes it; the activity adds times, peer ids and the signature. */
export interface PlanRequest {
  rolloutId: string;
  /** The rollout's index of `waves[0]`. */
  firstWave: number;
  /** Node ids per wave, in the order the rollout starts them. */
  waves: string[][];
  maxUnavailable: number;
  /** Failures the site may still tolerate under this plan. */
  failureThreshold: Threshold;
  /** Digest of the image manifest the rollout installs. */
  manifestDigest: string;
  /** What the nodes install; omitted, the plan withdraws any upgrade an earlier plan allowed. */
  upgrade?: PlanUpgrade | undefined;
  /** Reboot and health phase limits: how long a node may hold the reboot lease. */
  leaseTtlMs: number;
  /** Accept and write phase limits: how long after its turn opens a node may still start. */
  startWindowMs: number;
  /** Nodes reboot only inside this daily window: the plan starts at its opening and expires at its close. */
  maintenanceWindow?: { start: string; duration: number } | undefined;
}

/** What was published; small on purpose, it lands in the workflow's history. */
export interface PlanIssued {
  rolloutId: string;
  firstWave: number;
  waves: number;
  nodes: number;
  /** Nodes bound to a libp2p peer id. */
  pinned: number;
  /** Nodes that registered a peer id no valid enrolment certificate vouches for (not pinned). */
  unvouched?: string[];
  withdrawn: boolean;
  issuedAt: string;
  startsAt: string;
  expiresAt: string;
  seq: number;
}

/** Worst case until every turn of the plan is over, from its start (see p2p/coordination/schedule.ts). */
export function planSpanMs(plan: RolloutPlan): number {
  let end = Date.parse(plan.startsAt);
  for (const turn of timetable(plan).values()) end = Math.max(end, turn.endsBy);
  return end - Date.parse(plan.startsAt);
}

/**
 * When a plan issued at `nowMs` starts and expires: at once (or when the maintenance window
 * opens), for twice its worst-case span and at least MIN_PLAN_LIFETIME_MS, never past the
 * window's close.
 */
export function planTimes(
  nowMs: number,
  spanMs: number,
  window: PlanRequest['maintenanceWindow'],
): { startsAt: number; expiresAt: number } {
  const open = window ? windowAround(nowMs, window) : undefined;
  const startsAt = Math.max(nowMs, open?.opensAt ?? nowMs);
  const expiresAt = startsAt + Math.max(MIN_PLAN_LIFETIME_MS, 2 * spanMs);
  return { startsAt, expiresAt: open ? Math.min(expiresAt, open.closesAt) : expiresAt };
}

/**
 * The peer id a node may be pinned to: its projected peer id, when the node is enrolled and its
 * enrolment certificate verifies against the control plane's keys and binds this node to that
 * very peer. A registration is a node's own claim; only the certificate is the control plane's.
 */
export function vouchedPeerId(
  nodeId: string,
  node: Pick<NodeView, 'peerId'> | undefined,
  trust: Pick<NodeTrust, 'status' | 'certificate'> | undefined,
  trusted: TrustedKeys,
): string | undefined {
  if (!node?.peerId || trust?.status !== 'enrolled' || !trust.certificate) return undefined;
  const check = verifyEnrolment(trust.certificate, trusted);
  if (!check.ok) return undefined;
  const cert = check.certificate;
  return cert.nodeId === nodeId && cert.peerId === node.peerId ? cert.peerId : undefined;
}

/** Activities that sign the rollout plan a site follows when it loses the control plane. */
export function createPlanActivities({
  js,
  log,
  kv,
  signer,
  trustedKeys,
}: {
  js: JetStreamClient;
  log: EventLog;
  kv: KV;
  signer: SigningKeySource;
  /** Keys enrolment certificates may be signed with (default: the key that signs now). */
  trustedKeys?: TrustedKeys;
}) {
  return {
    /**
     * Signs the plan with the control plane's key and publishes it on the rollout's plan subject
     * (the stream keeps only the latest). A node is pinned to its libp2p peer id only when its
     * enrolment certificate vouches for that peer (vouchedPeerId).
     */
    async issuePlan(request: PlanRequest): Promise<PlanIssued> {
      const projection = await catchUp(await loadProjection(kv), log, {
        trustedKeys: trustedKeys ?? new Map(),
      });
      const now = Date.now();
      const key = await signer.current(new Date(now));
      const trusted = trustedKeys ?? trustKeys(key.publicKey);
      const peerIds: Record<string, string> = {};
      const unvouched: string[] = [];
      for (const nodeId of request.waves.flat()) {
        const node = projection.nodes.get(nodeId);
        const peerId = vouchedPeerId(nodeId, node, projection.trust.nodes.get(nodeId), trusted);
        if (peerId) peerIds[nodeId] = peerId;
        else if (node?.peerId) unvouched.push(nodeId);
      }
      let signed;
      try {
        const draft = parseWith(
          RolloutPlan,
          {
            v: PLAN_VERSION,
            rolloutId: request.rolloutId,
            manifestDigest: request.manifestDigest,
            waves: request.waves,
            maxUnavailable: request.maxUnavailable,
            failureThreshold: request.failureThreshold,
            issuedAt: new Date(now).toISOString(),
            startsAt: new Date(now).toISOString(),
            expiresAt: new Date(now + MIN_PLAN_LIFETIME_MS).toISOString(),
            leaseTtlMs: request.leaseTtlMs,
            startWindowMs: request.startWindowMs,
            firstWave: request.firstWave,
            ...(Object.keys(peerIds).length > 0 ? { peerIds } : {}),
            ...(request.upgrade ? { upgrade: request.upgrade } : {}),
          },
          'rollout plan',
        );
        const times = planTimes(now, planSpanMs(draft), request.maintenanceWindow);
        signed = signPlan(
          {
            ...draft,
            startsAt: new Date(times.startsAt).toISOString(),
            expiresAt: new Date(times.expiresAt).toISOString(),
          },
          key,
        );
      } catch (err) {
        if (err instanceof SchemaError) {
          throw ApplicationFailure.create({ type: 'InvalidPlan', message: err.message, nonRetryable: true });
        }
        throw err;
      }
      const ack = await js.publish(planSubject(request.rolloutId), JSON.stringify(signed), {
        msgID: signed.signature,
        expect: { streamName: PLANS_STREAM },
      });
      const { plan } = signed;
      return {
        rolloutId: plan.rolloutId,
        firstWave: plan.firstWave,
        waves: plan.waves.length,
        nodes: plan.waves.reduce((n, w) => n + w.length, 0),
        pinned: Object.keys(peerIds).length,
        ...(unvouched.length > 0 ? { unvouched } : {}),
        withdrawn: plan.upgrade === undefined,
        issuedAt: plan.issuedAt,
        startsAt: plan.startsAt,
        expiresAt: plan.expiresAt,
        seq: ack.seq,
      };
    },
  };
}
