// The local stack's public surface: provisioning, server launchers (used by `slotflow stack`
// and by the test harness) and the stack lifecycle.
export {
  defaultProvisionDeps,
  natsRecipe,
  provisionBinaries,
  provisionTool,
  temporalRecipe,
  ToolSource,
  type ProvisionDeps,
  type ResolvedTool,
  type StackBinaries,
  type ToolRecipe,
} from './binaries.ts';
export {
  PortInUseError,
  ProvisionError,
  SecurityMaterialError,
  ServerStartError,
  StackStateError,
} from './errors.ts';
export { stackDefaults, stackLayout } from './layout.ts';
export { createLogger } from '../runtime/log.ts';
export {
  natsArgs,
  natsHealthUrl,
  natsServerSpec,
  natsUrl,
  probeJetStream,
  probeNatsHealthz,
  recordedNatsUrl,
  type NatsServerOptions,
  type ProbeAuth,
} from './nats-server.ts';
export {
  credsPath,
  defaultNatsAuthDir,
  ensureNatsAuth,
  exportCredentials,
  issueCredentials,
  issueNodeCredentials,
  natsAuthPaths,
  prepareServerSecurity,
  readRevocations,
  SLOTFLOW_ACCOUNT,
  type ExportedCredentials,
  type NatsAuth,
  type ServerSecurity,
} from './nats-auth.ts';
export { reloadStackNats, revokeNodeCredentials, type NatsRevocation } from './nats-revocation.ts';
export {
  cliPermissions,
  nodePermissions,
  permissionsOf,
  workerPermissions,
  type NatsPermissions,
  type NatsRole,
} from './nats-permissions.ts';
export {
  DEFAULT_SERVER_NAMES,
  ensureTlsFiles,
  issueClientCertificate,
  tlsPaths,
  type TlsFiles,
} from './tls.ts';
export {
  probeRegistry,
  REGISTRY_BINARY,
  registryAddress,
  registryConfig,
  registryServerSpec,
  type RegistryOptions,
} from './registry.ts';
export { cacheBinDir, defaultStackDir, slotflowCache, slotflowHome } from './paths.ts';
export { isRunningBinary, terminate, StopOutcome } from './pids.ts';
export { assertPortsFree, pickFreePorts, type PortClaim } from './ports.ts';
export { execaRunner, type Runner, type RunResult } from '../runtime/runner.ts';
export {
  LaunchMode,
  launchServer,
  logTail,
  startServer,
  stopLaunched,
  waitUntilReady,
  type ExitInfo,
  type LaunchedServer,
  type ServerSpec,
} from './server-process.ts';
export { stackDown, type StackDownResult, type StoppedServer } from './stack-down.ts';
export {
  stackStatus,
  stackEnv,
  type NatsSecurityStatus,
  type NatsStatus,
  type RegistryStatus,
  type StackEnv,
  type StackStatus,
  type TemporalStatus,
} from './stack-status.ts';
export { stackUp, type StackUpOptions, type StackUpResult } from './stack-up.ts';
export { readRecord, recordPath, type StackRecord } from './state.ts';
export {
  probeHttp,
  probeTemporal,
  searchAttributes,
  temporalAddress,
  temporalArgs,
  temporalServerSpec,
  temporalUiUrl,
  type TemporalServerOptions,
} from './temporal-server.ts';
