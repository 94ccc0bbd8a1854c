import type { Digest } from '../../schema/index.ts';
import { BuildError } from './builder.ts';

/** The registry `--push os:2` and unqualified references go to: the local stack's. */
export const DEFAULT_REGISTRY = '127.0.0.1:5322';

/** A parsed OCI reference: `registry/repository[:tag][@sha256:…]`. */
export interface OciReference {
  /** `host[:port]` of the registry. */
  readonly registry: string;
  /** e.g. `slotflow/os`. */
  readonly repository: string;
  readonly tag?: string | undefined;
  readonly digest?: Digest | undefined;
}

/**
 * An OCI image the nodes pull themselves (Kairos): nothing to build, but it must be pinned by
 * digest so every node installs the same bytes.
 */
export function pinOciReference(reference: string): { reference: string; digest: Digest } {
  const m = /^([^@\s]+)@(sha256:[0-9a-f]{64})$/.exec(reference.trim());
  if (!m) {
    throw new BuildError(
      `OCI image '${reference}' is not pinned by digest; expected registry/repo:tag@sha256:<64 hex> (find it with 'skopeo inspect docker://…')`,
    );
  }
  return { reference: m[1] as string, digest: m[2] as Digest };
}

const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/**
 * Parses `registry/repo[:tag][@sha256:…]`. A first component without a dot, a colon or
 * `localhost` is a repository path, not a registry: such references go to `defaultRegistry`.
 */
export function parseOciReference(text: string, defaultRegistry = DEFAULT_REGISTRY): OciReference {
  const expected = `expected registry/repository[:tag][@sha256:<64 hex>], e.g. ${DEFAULT_REGISTRY}/os:2.0.0`;
  const trimmed = text.trim().replace(/^docker:\/\//, '');
  const [name, digest, extra] = trimmed.split('@');
  if (!name || extra !== undefined) throw new BuildError(`OCI reference '${text}' is malformed; ${expected}`);
  if (digest !== undefined && !/^sha256:[0-9a-f]{64}$/.test(digest)) {
    throw new BuildError(
      `OCI reference '${text}' has digest '${digest}'; expected sha256:<64 lowercase hex digits>`,
    );
  }
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  const hasRegistry = first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost');
  const registry = hasRegistry ? first : defaultRegistry;
  let rest = hasRegistry ? name.slice(slash + 1) : name;
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new BuildError(`OCI reference '${text}' has tag '${tag}'; ${expected}`);
  }
  if (!REPOSITORY.test(rest)) {
    throw new BuildError(
      `OCI reference '${text}' has repository '${rest}'; expected lowercase path components (${expected})`,
    );
  }
  return { registry, repository: rest, tag, digest: digest as Digest | undefined };
}

/** `registry/repo[:tag][@digest]`; with `pinned`, the digest form skopeo and the nodes take. */
export function formatOciReference(ref: OciReference, form: 'as-is' | 'pinned' = 'as-is'): string {
  const name = `${ref.registry}/${ref.repository}`;
  if (form === 'pinned') {
    if (!ref.digest) throw new BuildError(`OCI reference ${name} has no digest to pin`);
    return `${name}@${ref.digest}`;
  }
  return `${name}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/**
 * Registries spoken to over plain HTTP: loopback ones (the local stack's) and those listed in
 * SLOTFLOW_INSECURE_REGISTRIES (comma-separated `host:port`, e.g. compose's `registry:5000`).
 */
export function isInsecureRegistry(registry: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const host = registry.startsWith('[')
    ? registry.slice(0, registry.indexOf(']') + 1)
    : registry.split(':')[0];
  if (host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host ?? '')) return true;
  const listed = (env['SLOTFLOW_INSECURE_REGISTRIES'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return listed.includes(registry);
}
