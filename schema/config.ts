import { z } from 'zod';
import { Duration } from './duration.ts';
import { NodeId } from './ids.ts';
import { Labels, parseLabels } from './labels.ts';
import { IMAGES_BUCKET } from './subjects.ts';

const hostPort = z
  .string()
  .regex(/^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:7233');

const natsUrl = z
  .string()
  .regex(/^(nats|tls|ws|wss):\/\/[^\s,]+$/, 'expected a NATS URL such as nats://127.0.0.1:4222');

/** TLS files for a connection (client certificate optional). */
export const TlsFiles = z
  .object({
    ca: z.string().min(1).optional(),
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    serverName: z.string().min(1).optional(),
  })
  .refine((t) => (t.cert === undefined) === (t.key === undefined), {
    message: 'expected both a client certificate and its key, or neither',
  });

/** How to reach Temporal and NATS; the same code talks to the embedded stack or to clusters. */
export const ConnectionConfig = z.object({
  temporal: z.object({
    /** TEMPORAL_ADDRESS */
    address: hostPort.default('127.0.0.1:7233'),
    /** TEMPORAL_NAMESPACE */
    namespace: z.string().min(1).default('default'),
    /** TEMPORAL_TLS_CA / _CERT / _KEY / _SERVER_NAME */
    tls: TlsFiles.optional(),
    /** TEMPORAL_API_KEY (Temporal Cloud). */
    apiKey: z.string().min(1).optional(),
  }),
  nats: z.object({
    /** NATS_URL: one URL or several, comma-separated. */
    servers: z.array(natsUrl).min(1).default(['nats://127.0.0.1:4322']),
    /** NATS_CREDS: a .creds file (JWT + nkey). */
    credsFile: z.string().min(1).optional(),
    /** NATS_USER / NATS_PASSWORD */
    user: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /** NATS_TOKEN */
    token: z.string().min(1).optional(),
    /** NATS_TLS_CA / _CERT / _KEY */
    tls: TlsFiles.optional(),
  }),
  /** SLOTFLOW_HOME: keys and local state. */
  home: z.string().min(1),
});
export type ConnectionConfig = z.output<typeof ConnectionConfig>;

/** Environment variable names, documented in the README. */
export const ENV = {
  temporalAddress: 'TEMPORAL_ADDRESS',
  temporalNamespace: 'TEMPORAL_NAMESPACE',
  temporalTlsCa: 'TEMPORAL_TLS_CA',
  temporalTlsCert: 'TEMPORAL_TLS_CERT',
  temporalTlsKey: 'TEMPORAL_TLS_KEY',
  temporalTlsServerName: 'TEMPORAL_TLS_SERVER_NAME',
  temporalApiKey: 'TEMPORAL_API_KEY',
  natsUrl: 'NATS_URL',
  natsCreds: 'NATS_CREDS',
  natsUser: 'NATS_USER',
  natsPassword: 'NATS_PASSWORD',
  natsToken: 'NATS_TOKEN',
  natsTlsCa: 'NATS_TLS_CA',
  natsTlsCert: 'NATS_TLS_CERT',
  natsTlsKey: 'NATS_TLS_KEY',
  home: 'SLOTFLOW_HOME',
} as const;

function tlsFrom(env: Record<string, string | undefined>, prefix: string) {
  const tls = {
    ca: env[`${prefix}_CA`],
    cert: env[`${prefix}_CERT`],
    key: env[`${prefix}_KEY`],
    serverName: env[`${prefix}_SERVER_NAME`],
  };
  return Object.values(tls).some((v) => v !== undefined) ? tls : undefined;
}

/**
 * Builds the raw connection settings from environment variables (and a default home), ready
 * for `ConnectionConfig` to validate. Field paths in errors map back to the variables via ENV.
 */
export function connectionInputFromEnv(env: Record<string, string | undefined>, defaultHome: string) {
  const servers = env[ENV.natsUrl]
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return {
    temporal: {
      address: env[ENV.temporalAddress] || undefined,
      namespace: env[ENV.temporalNamespace] || undefined,
      tls: tlsFrom(env, 'TEMPORAL_TLS'),
      apiKey: env[ENV.temporalApiKey] || undefined,
    },
    nats: {
      servers: servers && servers.length > 0 ? servers : undefined,
      credsFile: env[ENV.natsCreds] || undefined,
      user: env[ENV.natsUser] || undefined,
      password: env[ENV.natsPassword] || undefined,
      token: env[ENV.natsToken] || undefined,
      tls: tlsFrom(env, 'NATS_TLS'),
    },
    home: env[ENV.home] || defaultHome,
  };
}

/** Labels given as `k=v,…` text or as an object. */
export const LabelsInput = z.union([
  Labels,
  z.string().transform((text, ctx) => {
    const parsed = parseLabels(text);
    if (typeof parsed === 'string') {
      ctx.addIssue({ code: 'custom', message: `expected labels such as site=berlin,role=edge (${parsed})` });
      return z.NEVER;
    }
    return parsed;
  }),
]);

/** A health check the agent runs on a trial boot. */
export const HealthCheckConfig = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected a lowercase name such as api-up'),
  /** argv; run without a shell. */
  command: z.array(z.string()).min(1, 'expected a command as a non-empty argv list'),
  timeout: Duration.prefault('30s'),
});

/** Where the agent fetches artifact images from; sources are tried in order. */
export const ArtifactSourceConfig = z.discriminatedUnion('type', [
  /** NATS Object Store bucket holding images named by digest. */
  z.object({ type: z.literal('nats'), bucket: z.string().min(1).default(IMAGES_BUCKET) }),
  /** A local directory (air-gapped): `<path>/<digest hex>.img`. */
  z.object({ type: z.literal('dir'), path: z.string().min(1) }),
  /** HTTP(S) mirror: `<url>/<digest hex>.img`, or the url with `{hex}` / `{digest}` filled in. */
  z.object({
    type: z.literal('http'),
    url: z.string().regex(/^https?:\/\/\S+$/, 'expected an http:// or https:// URL'),
  }),
]);
export type ArtifactSourceConfig = z.output<typeof ArtifactSourceConfig>;

/** External tools the kairos and rauc slot drivers run. */
export const SlotToolsConfig = z.object({
  kairosAgent: z.string().min(1).default('kairos-agent'),
  grubEditenv: z.string().min(1).default('grub2-editenv'),
  /** The GRUB environment block Kairos boots from. */
  grubenv: z.string().min(1).default('/oem/grubenv'),
  rauc: z.string().min(1).default('rauc'),
  /** Limit for one tool run (an install included). */
  timeout: Duration.prefault('30m'),
});

const devicePath = z.string().regex(/^\//, 'expected an absolute path such as /dev/disk/by-partlabel/root-a');

/**
 * The `grub` slot driver: two block devices (or, in tests, two files) and the GRUB environment
 * block whose `ORDER` / `A_OK` / `B_OK` / `A_TRY` / `B_TRY` (RAUC's GRUB protocol) pick the slot
 * GRUB boots; the project's grub.cfg (deploy/grub/grub.cfg) reads them.
 */
export const GrubSlotConfig = z
  .object({
    /** The slots' block devices; slot `a` is what GRUB calls `A`. */
    slots: z
      .object({
        a: devicePath.default('/dev/disk/by-partlabel/root-a'),
        b: devicePath.default('/dev/disk/by-partlabel/root-b'),
      })
      .strict()
      .prefault({})
      .refine((s) => s.a !== s.b, { message: 'expected two different devices for slots a and b' }),
    /** The GRUB environment block grub.cfg loads (on the EFI system partition). */
    envFile: devicePath.default('/boot/efi/grubenv'),
    /** grub-editenv binary (Debian: grub-common; Fedora calls it grub2-editenv). */
    grubEditenv: z.string().min(1).default('grub-editenv'),
    /** The running kernel's command line; grub.cfg passes `rauc.slot=A|B` on it. */
    cmdline: devicePath.default('/proc/cmdline'),
  })
  .strict();
export type GrubSlotConfig = z.output<typeof GrubSlotConfig>;

/** The node agent's settings, from flags, environment and an optional file. */
export const AgentConfig = z
  .object({
    nodeId: NodeId,
    dataDir: z.string().min(1, 'expected a directory for slots, journal and keys'),
    labels: LabelsInput.default({}),
    slotDriver: z.enum(['file', 'grub', 'kairos', 'rauc']).default('file'),
    reboot: z.enum(['simulate', 'command']).default('simulate'),
    /**
     * Test-only (SLOTFLOW_LAB=1): this node is a lab machine whose test or benchmark harness plays
     * the parts the agent cannot (the bootloader, the reboot), so slot and reboot drivers that
     * cannot work together on a real machine are allowed. Never set it on a real node.
     */
    lab: z.boolean().default(false),
    /** argv run by the `command` reboot driver. */
    rebootCommand: z.array(z.string()).min(1).default(['systemctl', 'reboot']),
    /** Version reported before any upgrade (first boot). */
    initialVersion: z.string().min(1).default('0.0.0'),
    heartbeatInterval: Duration.prefault('15s'),
    healthChecks: z.array(HealthCheckConfig).default([]),
    /** Where the control plane's public key(s) are read from (the bootstrap trust). */
    trustedKeysDir: z.string().min(1).optional(),
    /** Commands valid for longer than this (expiresAt further out than now + this) are refused. */
    maxCommandLifetime: Duration.prefault('24h'),
    /** Prometheus text endpoint, e.g. 127.0.0.1:9464. */
    metricsListen: hostPort.optional(),
    /**
     * A file to which the id of every event the node records is appended, one per line, before
     * it is published: an audit of what the node produced, to hold against the event stream.
     * Unset (the default), none is kept.
     */
    eventLedger: z.string().min(1).optional(),
    /** Where artifact images come from, tried in order. */
    artifactSources: z
      .array(ArtifactSourceConfig)
      .min(1)
      .default([{ type: 'nats', bucket: IMAGES_BUCKET }]),
    /** Give up fetching an image (all sources, retries included) after this long. */
    fetchTimeout: Duration.prefault('30m'),
    /** The `command` reboot driver reports a failure when the machine still runs after this long. */
    rebootTimeout: Duration.prefault('10m'),
    tools: SlotToolsConfig.prefault({}),
    /** Settings of the `grub` slot driver. */
    grub: GrubSlotConfig.prefault({}),
    /** The peer-to-peer fallback: on when `listen` has an address (or `relay.reserve` is set). */
    p2p: z
      .object({
        /** Multiaddrs to listen on, e.g. /ip4/0.0.0.0/tcp/4001. */
        listen: z.array(z.string()).default([]),
        /** Addresses to advertise instead (port forwarding). */
        announce: z.array(z.string()).default([]),
        /** Peers to stay connected to; /p2p/<peer id> may be omitted. */
        bootstrap: z.array(z.string()).default([]),
        mdns: z.boolean().default(false),
        /** CIDRs peers may be dialled at and accepted from (default: loopback and private ranges). */
        allowedNetworks: z.array(z.string()).optional(),
        relay: z
          .object({
            /** Serve as a circuit relay for peers that cannot be dialled directly. */
            serve: z.boolean().default(false),
            /** Behind NAT: reserve a slot on a relay peer and be reached through it. */
            reserve: z.boolean().default(false),
          })
          .strict()
          .default({ serve: false, reserve: false }),
        /** Time without NATS before the agent switches to peer-to-peer mode. */
        natsLossGrace: Duration.prefault('20s'),
        /**
         * The fleet's mesh pre-shared key file (`$SLOTFLOW_HOME/keys/mesh.psk` by default, mode
         * 600): peers without it cannot connect. Required unless `openMesh` is set.
         */
        meshKey: z.string().min(1).optional(),
        /** Run the mesh without a pre-shared key (any peer on the allowed networks may connect). */
        openMesh: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
  })
  .strict();
export type AgentConfig = z.output<typeof AgentConfig>;
export type AgentConfigInput = z.input<typeof AgentConfig>;
