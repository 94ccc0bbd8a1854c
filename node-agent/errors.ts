// The agent's error classes: each names what was expected, what came, and what to do.

/** The journal cannot be read or written; the agent must not act without it. */
export class JournalError extends Error {
  override name = 'JournalError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Bytes that do not match the signed manifest (a chunk, the size or the whole digest). */
export class ArtifactInvalidError extends Error {
  override name = 'ArtifactInvalidError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** An artifact source could not deliver (missing object, network, server error); try another or later. */
export class ArtifactUnavailableError extends Error {
  override name = 'ArtifactUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A slot driver operation failed (tool exit code, timeout, bad state file). */
export class SlotDriverError extends Error {
  override name = 'SlotDriverError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Refused: the operation would overwrite or arm the slot the node runs from, or an empty slot. */
export class SlotInUseError extends Error {
  override name = 'SlotInUseError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The reboot did not happen (command failed, or the machine still runs after the timeout). */
export class RebootError extends Error {
  override name = 'RebootError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Another agent process holds the data directory. */
export class AgentLockError extends Error {
  override name = 'AgentLockError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A state and outcome the transition table does not allow: a bug, never an input problem. */
export class TransitionError extends Error {
  override name = 'TransitionError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A one-line description of any thrown value, for events and logs. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n').join(' ');
  return String(err);
}

/** A small state file of the agent (trusted keys, minimum version) cannot be read or is invalid. */
export class StateFileError extends Error {
  override name = 'StateFileError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
