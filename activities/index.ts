import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { EventLog } from '../eventlog/index.ts';
import type { Runner } from '../runtime/runner.ts';
import type { SigningKeySource, TrustedKeys } from '../signing/index.ts';
import { createCommandActivities } from './commands.ts';
import { createConnectivityActivities } from './connectivity.ts';
import { createEventActivities } from './events.ts';
import { createFleetActivities } from './fleet.ts';
import { createImageActivities } from './image.ts';
import { createPeerFallbackActivities } from './peer-fallback.ts';
import { createPlanActivities } from './plan.ts';

/** What the activities need from the worker process. */
export interface ActivityDeps {
  nc: NatsConnection;
  log: EventLog;
  kv: KV;
  /** The control-plane key that signs now (follows the keyring's rotations). */
  signer: SigningKeySource;
  /** Control-plane keys that sign node enrolments (the projection trusts nodes they enrolled). */
  trustedKeys: TrustedKeys;
  runner: Runner;
  buildsDir: string;
  hostTaskQueue: string;
}

/** Every activity the workflows call, bound to the worker's connections. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createImageActivities(deps),
    ...createEventActivities(deps),
    ...createFleetActivities(deps),
    ...createCommandActivities({ js: deps.log.js, signer: deps.signer }),
    ...createPlanActivities({
      js: deps.log.js,
      log: deps.log,
      kv: deps.kv,
      signer: deps.signer,
      trustedKeys: deps.trustedKeys,
    }),
    ...createConnectivityActivities({ nc: deps.nc, jsm: deps.log.jsm }),
    ...createPeerFallbackActivities({ kv: deps.kv, jsm: deps.log.jsm }),
  };
}

/** Activity signatures, imported by workflows as a type only. */
export type Activities = ReturnType<typeof createActivities>;
export type { BuildRequest, BuiltImage, PushSource } from './image.ts';
export type { Target } from './fleet.ts';
export type { CommandRequest } from './commands.ts';
export type { JetStreamReach } from './connectivity.ts';
export type { PeerFallback } from './peer-fallback.ts';
export type { PlanIssued, PlanRequest } from './plan.ts';
