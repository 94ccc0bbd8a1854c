import type { KV } from '@nats-io/kv';
import type { EventLog } from '../eventlog/index.ts';
import { catchUp, loadProjection } from '../projection/index.ts';
import { compareVersions, selectorMatches, type SelectorTerm } from '../schema/index.ts';
import { certificateDigest } from './builders/rauc-bundle.ts';
import type { TrustedKeys } from '../signing/index.ts';

/** A node chosen for a rollout and the version it runs now. */
export interface Target {
  nodeId: string;
  version: string;
}

/** Activities that read the fleet projection. */
export function createFleetActivities({
  log,
  kv,
  trustedKeys,
}: {
  log: EventLog;
  kv: KV;
  trustedKeys: TrustedKeys;
}) {
  const trust = { trustedKeys };
  return {
    /**
     * Nodes matching the selector, sorted by id; nodes already on the version, and older-than-
     * target nodes' opposite (a downgrade) unless allowed, are listed as skipped with the reason.
     */
    async resolveTargets(input: {
      selector: SelectorTerm[];
      version: string;
      allowDowngrade: boolean;
    }): Promise<{ targets: Target[]; skipped: { nodeId: string; reason: string }[] }> {
      const projection = await catchUp(await loadProjection(kv), log, trust);
      const targets: Target[] = [];
      const skipped: { nodeId: string; reason: string }[] = [];
      const nodes = [...projection.nodes.values()].sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
      for (const node of nodes) {
        if (!selectorMatches(input.selector, node.labels)) continue;
        // A node that is not (or no longer) enrolled gets no command.
        if (node.enrolment !== 'enrolled') {
          skipped.push({ nodeId: node.nodeId, reason: `not enrolled (${node.enrolment ?? 'unknown'})` });
          continue;
        }
        const cmp = compareVersions(node.version, input.version);
        if (cmp === 0) skipped.push({ nodeId: node.nodeId, reason: `already on ${input.version}` });
        else if (cmp > 0 && !input.allowDowngrade) {
          skipped.push({
            nodeId: node.nodeId,
            reason: `runs ${node.version}, newer than ${input.version} (allow downgrades to include it)`,
          });
        } else targets.push({ nodeId: node.nodeId, version: node.version });
      }
      return { targets, skipped };
    },

    /**
     * What the nodes the selector matches install: `file` when one declares a slot-image driver
     * (file, grub, rauc), `oci` when one declares Kairos or does not say (agents before the
     * declaration took OCI references as they came); `ociOnly` names nodes that declared Kairos.
     */
    async imageKindsWanted(input: {
      selector: SelectorTerm[];
    }): Promise<{ file: boolean; oci: boolean; ociOnly: string[] }> {
      const projection = await catchUp(await loadProjection(kv), log, trust);
      const wanted = { file: false, oci: false, ociOnly: [] as string[] };
      for (const node of projection.nodes.values()) {
        if (!selectorMatches(input.selector, node.labels)) continue;
        if (node.installs?.includes('file')) wanted.file = true;
        if (!node.installs || node.installs.includes('oci')) wanted.oci = true;
        if (node.installs && !node.installs.includes('file')) wanted.ociOnly.push(node.nodeId);
      }
      wanted.ociOnly.sort();
      return wanted;
    },

    /**
     * The slot image an earlier rollout converted this OCI digest into, per its ImageConverted
     * event: same filesystem, and for a RAUC bundle the same compatible and signing certificate.
     */
    async findConvertedImage(input: {
      ociDigest: string;
      format: 'ext4' | 'squashfs';
      bundle?: { compatible: string; cert: string };
    }): Promise<{ digest: string; rolloutId: string } | undefined> {
      // An unreadable certificate matches nothing; the build then says what is wrong with it.
      const signer = input.bundle
        ? await certificateDigest(input.bundle.cert).catch(() => undefined)
        : undefined;
      const projection = await catchUp(await loadProjection(kv), log, trust);
      for (const rollout of projection.rollouts.values()) {
        const c = rollout.converted;
        if (!c || c.ociDigest !== input.ociDigest || c.format !== input.format || !rollout.imageDigest)
          continue;
        const sameBundle = input.bundle
          ? c.bundle?.compatible === input.bundle.compatible && c.bundle.signer === signer
          : c.bundle === undefined;
        if (sameBundle) return { digest: rollout.imageDigest, rolloutId: rollout.rolloutId };
      }
      return undefined;
    },
  };
}
