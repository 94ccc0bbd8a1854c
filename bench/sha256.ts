// sha256 throughput of slotflow's hashing path (`manifestOf`: the whole-image digest plus one
// digest per 1 MiB chunk, what nodes verify before a byte reaches a slot, in one pass) and of plain
// node:crypto streaming, each against `openssl speed` on 1 MiB blocks, measured in turns.
import { createHash, randomFillSync } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { manifestOf } from '../activities/builders/manifest.ts';
import { execaRunner } from '../runtime/runner.ts';
import { GoalKind, measured, notMeasured, round, type Figure, type FigureSpec } from './figure.ts';
import { OPENSSL_BLOCK, opensslSha256 } from './openssl.ts';
import { best, mibPerSec } from './stats.ts';
import { bySize, type BenchModule } from './suite.ts';

const goal = { kind: GoalKind.ratioAtLeast, target: 0.95, text: '≥ 0.95' } as const;
const pipelineSpec: FigureSpec = {
  id: 'sha256-pipeline',
  title: 'sha256 in the hashing pipeline (manifestOf over an image file)',
  comparedWith: 'openssl speed -bytes 1048576 sha256',
  goal,
};
const nodeSpec: FigureSpec = {
  id: 'sha256-node-crypto',
  title: 'sha256 streaming in node:crypto (1 MiB updates)',
  comparedWith: 'openssl speed -bytes 1048576 sha256',
  goal,
};

async function writeImage(path: string, bytes: number): Promise<void> {
  const file = await open(path, 'w');
  const block = Buffer.allocUnsafe(OPENSSL_BLOCK);
  try {
    for (let at = 0; at < bytes; at += block.length) {
      randomFillSync(block);
      await file.write(block, 0, Math.min(block.length, bytes - at));
    }
  } finally {
    await file.close();
  }
}

/**
 * Bytes per second of one streaming sha256 over `bytes`, fed the same 1 MiB block again and
 * again from memory: what `openssl speed` does, so the two differ only in the hashing call.
 */
function nodeCryptoRate(bytes: number): number {
  const block = randomFillSync(Buffer.allocUnsafe(OPENSSL_BLOCK));
  const hash = createHash('sha256');
  const started = performance.now();
  for (let at = 0; at < bytes; at += OPENSSL_BLOCK) hash.update(block);
  hash.digest();
  return bytes / ((performance.now() - started) / 1000);
}

export const sha256Bench: BenchModule = {
  name: 'sha256',
  summary: 'sha256 of the hashing pipeline and node:crypto against openssl speed',
  figures: () => [pipelineSpec, nodeSpec],
  async run(ctx) {
    const bytes = bySize(ctx.size, { tiny: 8, quick: 256, full: 1024 }) * OPENSSL_BLOCK;
    const rounds = bySize(ctx.size, { tiny: 1, quick: 5, full: 7 });
    const seconds = bySize(ctx.size, { tiny: 1, quick: 1, full: 2 });
    const image = join(ctx.workDir, 'sha256-image.img');
    ctx.say(`sha256: writing a ${bytes / OPENSSL_BLOCK} MiB image`);
    await writeImage(image, bytes);
    await manifestOf(image, { format: 'raw', version: 'bench' }); // warm the page cache

    const openssl: number[] = [];
    const pipeline: number[] = [];
    const node: number[] = [];
    let opensslCommand = '';
    let opensslError: string | undefined;
    // In turns, so a burst of load from elsewhere on the machine hits every contender alike.
    for (let r = 0; r < rounds; r++) {
      ctx.say(`sha256: round ${r + 1}/${rounds}`);
      if (!opensslError) {
        try {
          const o = await opensslSha256(execaRunner, seconds);
          openssl.push(o.bytesPerSec);
          opensslCommand = o.command;
        } catch (err) {
          opensslError = (err as Error).message;
        }
      }
      const started = performance.now();
      await manifestOf(image, { format: 'raw', version: 'bench' });
      pipeline.push(bytes / ((performance.now() - started) / 1000));
      node.push(nodeCryptoRate(bytes));
    }

    const mib = (v: number) => ({ amount: round(mibPerSec(v), 1), unit: 'MiB/s' });
    const details = {
      imageMiB: bytes / OPENSSL_BLOCK,
      rounds,
      opensslCommand,
      samplesMiBps: {
        openssl: openssl.map((v) => round(mibPerSec(v), 1)),
        pipeline: pipeline.map((v) => round(mibPerSec(v), 1)),
        nodeCrypto: node.map((v) => round(mibPerSec(v), 1)),
      },
    };
    const baseline = openssl.length > 0 ? mib(best(openssl)) : undefined;
    const why = opensslError ? `openssl speed could not run: ${opensslError}` : undefined;
    const figures: Figure[] = [];
    const pipelineRate = mib(best(pipeline));
    figures.push(
      baseline
        ? measured(pipelineSpec, pipelineRate, baseline, {
            reason:
              'one pass over the file, but two digests of every byte (the whole image and its chunk) on one core: at most half the rate of one openssl stream',
            details,
          })
        : notMeasured(pipelineSpec, 'unavailable', why ?? 'openssl gave no rate', {
            ...details,
            value: pipelineRate,
          }),
    );
    const nodeRate = mib(best(node));
    figures.push(
      baseline
        ? measured(nodeSpec, nodeRate, baseline, { details: { bytesHashed: bytes } })
        : notMeasured(nodeSpec, 'unavailable', why ?? 'openssl gave no rate', { value: nodeRate }),
    );
    return figures;
  },
};
