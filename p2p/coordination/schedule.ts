import { thresholdBreached, type LeaseReport, type RolloutPlan } from '../../schema/index.ts';

// Reboot coordination without the control plane, as a pure function of the signed plan, the
// lease reports a node has seen, and its clock.
//
// Turns. Within a wave, node i belongs to chain (i mod m), m = maxUnavailable; its chain
// predecessor is node i - m. A node may start its turn when its predecessor's turn is over and,
// for a wave after the first, when every node of the earlier waves is over and their outcomes
// pass the failure gate.
//
// Worst-case schedule. Every peer derives the same fixed timetable from the signed plan alone:
// with T = startWindow + leaseTtl, wave w opens at startsAt + sum over earlier waves of
// ceil(size / m) * T, and node i of the wave has turn r = floor(i / m), which opens at
// waveOpen + r * T. A node must start its turn no later than open + startWindow (after that it
// forfeits and never reboots for this plan) and finish it within leaseTtl, so its turn is over
// by open + T at the latest, whatever happens to messages.
//
// A turn is "over" in a node's view when the node saw the holder's `done` report (sent only
// after the holder finished), when it saw the holder's `started` report and the clock passed
// that start plus leaseTtl plus the tolerated clock skew (the holder's own deadline: a turn held
// past it is reclaimed), or when the clock passed the turn's fixed end plus the skew.
//
// Safety (at most m nodes inside a turn at once): two nodes of one chain never
// overlap, because the later one starts only after the earlier one's turn is over by one of
// those facts, and all of them imply the earlier node finished (its own report, or its own
// deadlines measured on a clock at most clockSkew away). Chains of one wave are m, and waves do
// not overlap for the same reason. Lost, delayed or partitioned gossip only slows things down
// (a node waits for the fixed end instead of the report); it cannot let two turns of a chain
// overlap. What safety rests on: reports are authentic (gossip messages are signed by the
// author's libp2p key and the plan pins node ids to peer ids), clocks agree within clockSkew,
// and every agent finishes its turn within leaseTtl of its start (the plan sets leaseTtl to the
// rollout's reboot and health limits). A node that overruns leaseTtl counts as failed at the
// gate, as a timed-out node does under the control plane, and its turn is over for its peers:
// an overrun is the one case where more than m nodes may be down at once.

/** Seen reports of one node for one rollout. */
export interface NodeReports {
  started?: Extract<LeaseReport, { type: 'started' }>;
  done?: Extract<LeaseReport, { type: 'done' }>;
}

/** A node's place in the plan and its fixed timetable (ms since epoch). */
export interface Turn {
  readonly nodeId: string;
  readonly wave: number;
  readonly index: number;
  readonly predecessor: string | undefined;
  /** When the turn opens in the worst case. */
  readonly opensAt: number;
  /** Latest moment the node may start (by its own clock). */
  readonly latestStart: number;
  /** The turn is surely over at this time (plus clock skew, by another node's clock). */
  readonly endsBy: number;
}

/** What a node may do now. */
export type Decision =
  | { readonly type: 'go'; readonly turn: Turn; readonly deadline: number }
  | {
      readonly type: 'wait';
      readonly turn: Turn;
      readonly reason: string;
      /** The node whose turn this one waits on, if any (else the plan's start). */
      readonly waitingFor?: string;
    }
  | { readonly type: 'forfeit'; readonly turn: Turn; readonly reason: string }
  | {
      readonly type: 'gate-failed';
      readonly turn: Turn;
      readonly wave: number;
      readonly failed: number;
      readonly executed: number;
    }
  | { readonly type: 'done'; readonly turn: Turn };

/** The plan's fixed timetable for every node. */
export function timetable(plan: RolloutPlan): Map<string, Turn> {
  const m = plan.maxUnavailable;
  const slot = plan.startWindowMs + plan.leaseTtlMs;
  const turns = new Map<string, Turn>();
  let waveOpen = Date.parse(plan.startsAt);
  plan.waves.forEach((nodes, wave) => {
    nodes.forEach((nodeId, index) => {
      const opensAt = waveOpen + Math.floor(index / m) * slot;
      turns.set(nodeId, {
        nodeId,
        wave,
        index,
        predecessor: index >= m ? nodes[index - m] : undefined,
        opensAt,
        latestStart: opensAt + plan.startWindowMs,
        endsBy: opensAt + slot,
      });
    });
    waveOpen += Math.ceil(nodes.length / m) * slot;
  });
  return turns;
}

/** When a turn is over at the latest in this view: its holder's deadline once it reported its start. */
export function turnEnd(plan: RolloutPlan, turn: Turn, reports: NodeReports | undefined): number {
  const started = reports?.started ? Date.parse(reports.started.at) : Number.NaN;
  const held = Number.isFinite(started) ? started + plan.leaseTtlMs : Number.POSITIVE_INFINITY;
  return Math.min(turn.endsBy, held) + plan.clockSkewMs;
}

/** Whether a node's turn is over in this view, and how it went. */
export function turnOutcome(
  plan: RolloutPlan,
  turn: Turn,
  reports: NodeReports | undefined,
  now: number,
): 'running' | 'succeeded' | 'failed' {
  if (reports?.done) return reports.done.outcome === 'succeeded' ? 'succeeded' : 'failed';
  return now >= turnEnd(plan, turn, reports) ? 'failed' : 'running';
}

/** The gate in front of wave `wave`: every earlier node over, failures within the threshold. */
export function gateBefore(
  plan: RolloutPlan,
  turns: Map<string, Turn>,
  reports: ReadonlyMap<string, NodeReports>,
  wave: number,
  now: number,
): { open: boolean; breached: boolean; failed: number; executed: number; waitingFor?: string } {
  let failed = 0;
  let executed = 0;
  let waitingFor: string | undefined;
  for (let w = 0; w < wave; w++) {
    for (const nodeId of plan.waves[w]!) {
      const outcome = turnOutcome(plan, turns.get(nodeId)!, reports.get(nodeId), now);
      if (outcome === 'running') waitingFor ??= nodeId;
      else {
        executed++;
        if (outcome === 'failed') failed++;
      }
    }
  }
  const breached = thresholdBreached(plan.failureThreshold, failed, executed);
  return { open: waitingFor === undefined && !breached, breached, failed, executed, waitingFor };
}

/** Decides whether `nodeId` may start its reboot turn at `now`. */
export function decide(
  plan: RolloutPlan,
  turns: Map<string, Turn>,
  reports: ReadonlyMap<string, NodeReports>,
  nodeId: string,
  now: number,
): Decision {
  const turn = turns.get(nodeId);
  if (!turn) throw new Error(`node ${nodeId} is not in plan ${plan.rolloutId}`);
  if (reports.get(nodeId)?.done) return { type: 'done', turn };
  const skew = plan.clockSkewMs;
  const startBy = turn.latestStart - skew;
  if (now > startBy) {
    return {
      type: 'forfeit',
      turn,
      reason: `turn had to start by ${new Date(startBy).toISOString()} (plan ${plan.rolloutId}, wave ${turn.wave}, position ${turn.index})`,
    };
  }
  if (turn.wave > 0) {
    const gate = gateBefore(plan, turns, reports, turn.wave, now);
    if (gate.breached && gate.waitingFor === undefined) {
      return { type: 'gate-failed', turn, wave: turn.wave, failed: gate.failed, executed: gate.executed };
    }
    if (!gate.open) {
      return {
        type: 'wait',
        turn,
        reason: `waiting for ${gate.waitingFor ?? 'the gate'} of an earlier wave`,
        ...(gate.waitingFor ? { waitingFor: gate.waitingFor } : {}),
      };
    }
  } else if (now < Date.parse(plan.startsAt)) {
    return { type: 'wait', turn, reason: `plan starts at ${plan.startsAt}` };
  }
  if (turn.predecessor !== undefined) {
    const pred = turns.get(turn.predecessor)!;
    if (turnOutcome(plan, pred, reports.get(turn.predecessor), now) === 'running') {
      return {
        type: 'wait',
        turn,
        reason: `waiting for ${turn.predecessor} to finish its turn`,
        waitingFor: turn.predecessor,
      };
    }
  }
  return { type: 'go', turn, deadline: now + plan.leaseTtlMs };
}
