// Errors of the peer-to-peer layer. Messages say what was expected, what came, and what to do.

/** A p2p setting that cannot work (bad multiaddr, bad CIDR, unusable data dir). */
export class P2pConfigError extends Error {
  override name = 'P2pConfigError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The peer identity file is missing, unreadable, too open or not a libp2p private key. */
export class PeerIdentityError extends Error {
  override name = 'PeerIdentityError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The mesh pre-shared key file is missing, unreadable, too open or not a libp2p swarm key. */
export class MeshKeyError extends Error {
  override name = 'MeshKeyError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** This node's enrolment certificate does not verify, names another node or another peer. */
export class EnrolmentError extends Error {
  override name = 'EnrolmentError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A peer broke the chunk protocol (bad frame, wrong size) or answered with an error. */
export class ChunkProtocolError extends Error {
  override name = 'ChunkProtocolError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A chunk's bytes do not hash to the digest the signed manifest names. */
export class ChunkIntegrityError extends Error {
  override name = 'ChunkIntegrityError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** An image could not be fetched from peers (no peer holds some chunks, or the deadline passed). */
export class ChunkFetchError extends Error {
  override name = 'ChunkFetchError';
  /** Indexes of the chunks still missing. */
  readonly missing: readonly number[];
  constructor(message: string, missing: readonly number[], options?: { cause?: unknown }) {
    super(message, options);
    this.missing = missing;
  }
}

/** This node's reboot turn passed (its window closed before it could start); it must not reboot. */
export class LeaseForfeitedError extends Error {
  override name = 'LeaseForfeitedError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** An earlier wave's failures breached the plan's threshold: later waves do not start. */
export class WaveGateFailedError extends Error {
  override name = 'WaveGateFailedError';
  readonly wave: number;
  readonly failed: number;
  readonly executed: number;
  constructor(message: string, detail: { wave: number; failed: number; executed: number }) {
    super(message);
    this.wave = detail.wave;
    this.failed = detail.failed;
    this.executed = detail.executed;
  }
}

/** A rollout plan that fails verification (forged, unknown key, expired). */
export class PlanRejectedError extends Error {
  override name = 'PlanRejectedError';
}

/** A node that is not in the rollout plan asked for a reboot turn. */
export class NotInPlanError extends Error {
  override name = 'NotInPlanError';
}

/** Short text for an unknown thrown value, for logs and error messages. */
export function describeError(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
