/** A piece of the VM lab could not be built: a tool is missing or failed; says what to install or fix. */
export class LabBuildError extends Error {
  override name = 'LabBuildError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A lab VM did not start, or did not reach the console line it was expected to print in time. */
export class LabVmError extends Error {
  override name = 'LabVmError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
