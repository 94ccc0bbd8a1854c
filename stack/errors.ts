/** A tool the stack needs (Temporal CLI, nats-server) could not be found, built or run. */
export class ProvisionError extends Error {
  override name = 'ProvisionError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A port the stack wants to listen on is already taken by another process. */
export class PortInUseError extends Error {
  override name = 'PortInUseError';
  readonly port: number;
  constructor(message: string, port: number, options?: { cause?: unknown }) {
    super(message, options);
    this.port = port;
  }
}

/** A server process exited early or did not become healthy in time. */
export class ServerStartError extends Error {
  override name = 'ServerStartError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The recorded stack state (`stack.json`) is unreadable or does not match what is running. */
export class StackStateError extends Error {
  override name = 'StackStateError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Keys, certificates or NATS credentials of the stack could not be made or read. */
export class SecurityMaterialError extends Error {
  override name = 'SecurityMaterialError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
