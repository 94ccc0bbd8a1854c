// The results as people read them: a terminal table after a run, and the Markdown table the
// README carries. `node bench/render.ts [results.json] [--markdown]` renders a stored file.
import { parseArgs } from 'node:util';
import Table from 'cli-table3';
import type { Figure, Quantity } from './figure.ts';
import { machineLine } from './machine.ts';
import { readResults, type Results } from './results.ts';

export const DEFAULT_RESULTS = new URL('./results/latest.json', import.meta.url);

function quantity(q: Quantity | undefined): string {
  if (!q) return '—';
  const digits = Math.abs(q.amount) >= 100 ? 0 : Math.abs(q.amount) >= 10 ? 1 : 2;
  return `${q.amount.toLocaleString('en-US', { maximumFractionDigits: digits })} ${q.unit}`;
}

function ratio(f: Figure): string {
  if (f.ratio === undefined) return '—';
  if (f.goal.kind === 'overhead-at-most') return `${(f.ratio * 100 - 100).toFixed(1)} % over`;
  return f.ratio.toFixed(f.ratio >= 10 ? 1 : 2);
}

function outcome(f: Figure): string {
  if (f.status !== 'measured') return f.status;
  return f.verdict;
}

/** One row per figure: figure, measured, compared with, baseline, ratio, goal, outcome. */
export function rows(results: Results): string[][] {
  return results.figures.map((f) => [
    f.title,
    f.status === 'measured' ? quantity(f.value) : '—',
    f.comparedWith.label,
    quantity(f.comparedWith.value),
    ratio(f),
    f.goal.text,
    outcome(f),
  ]);
}

const HEAD = ['figure', 'measured', 'compared with', 'baseline', 'ratio', 'goal', 'outcome'];

/** Why each unmeasured figure is missing, and the notes on measured ones, one line each. */
export function notes(results: Results, limit = 240): string[] {
  return results.figures
    .filter((f) => f.reason)
    .map((f) => {
      const reason = f.reason!.split('\n')[0]!;
      return `${f.title}: ${reason.length > limit ? `${reason.slice(0, limit - 1)}…` : reason}`;
    });
}

/** The table for a terminal. */
export function renderTable(results: Results, color = false): string {
  const table = new Table({
    head: HEAD,
    colWidths: [34, 16, 30, 14, 12, 16, 13],
    wordWrap: true,
    style: { head: color ? ['cyan'] : [], border: color ? ['grey'] : [] },
  });
  for (const row of rows(results)) table.push(row);
  const notesText = notes(results)
    .map((n) => `  - ${n}`)
    .join('\n');
  return `${table.toString()}\n${notesText}\n${results.size} run, ${(results.durationMs / 60_000).toFixed(1)} min on ${machineLine(results.machine)}\n`;
}

const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

/** The Markdown table for the README, with the machine it ran on. */
export function renderMarkdown(results: Results): string {
  // Padded as prettier pads Markdown tables, so the README stays formatted when pasted.
  const table = [HEAD, ...rows(results).map((r) => r.map(cell))];
  const widths = HEAD.map((_, c) => Math.max(3, ...table.map((r) => r[c]!.length)));
  const line = (r: string[]) => `| ${r.map((text, c) => text.padEnd(widths[c]!)).join(' | ')} |`;
  const lines = [line(HEAD), line(widths.map((w) => '-'.repeat(w))), ...table.slice(1).map(line)];
  return (
    `${lines.join('\n')}\n\n` +
    `${notes(results)
      .map((n) => `- ${cell(n)}`)
      .join('\n')}\n\n` +
    `Measured ${results.finishedAt.slice(0, 10)} (\`npm run bench${results.size === 'full' ? '' : ` -- --${results.size}`}\`, ` +
    `${(results.durationMs / 60_000).toFixed(0)} min) on ${machineLine(results.machine)}.\n`
  );
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    options: { markdown: { type: 'boolean', default: false } },
    allowPositionals: true,
  });
  const results = await readResults(positionals[0] ?? DEFAULT_RESULTS.pathname);
  process.stdout.write(
    values.markdown ? renderMarkdown(results) : renderTable(results, process.stdout.isTTY),
  );
}
