/** Bad usage or input on the command line: the CLI prints the message and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The operation ran and failed (e.g. a rollout ended rolled back): the CLI exits 1. */
export class OperationFailed extends Error {
  override name = 'OperationFailed';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
