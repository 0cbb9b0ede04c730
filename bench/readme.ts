/**
 * bench/readme.ts: the benchmark summary in README.md and README.zh-CN.md, refreshed from one
 * run so that both READMEs always quote the same numbers.
 *
 * Each README marks where the numbers go with two pairs of HTML comments (invisible when
 * rendered); everything between a pair is rewritten, everything else is left alone:
 *
 *     <!-- bench:summary -->  … the run's machine and command, and the summary table …  <!-- /bench:summary -->
 *     <!-- bench:targets -->  … the targets table …                                     <!-- /bench:targets -->
 *
 * A full `npm run bench` does this at its end; `npm run bench -- --update-readme` does it from
 * the last bench/results/latest.json without measuring anything. README.zh-CN.md gets Chinese
 * headings. A README that is missing, or lacks the markers, is reported and left untouched.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { machineLine, markdownTable, summaryTable, targetTable, type BenchReport, type Language } from './report.ts';
import { REPO_ROOT } from './site.ts';

const README_FILES: { file: string; language: Language }[] = [
  { file: 'README.md', language: 'en' },
  { file: 'README.zh-CN.md', language: 'zh' },
];

/** The text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` for one language. */
function sections(report: BenchReport, language: Language): Record<'summary' | 'targets', string> {
  const day = report.startedAt.slice(0, 10);
  const source =
    language === 'zh'
      ? `${day} 一次 \`${report.command}\` 的结果（${machineLine(report)}；${report.generator.version}），完整报告见 [bench/results/latest.md](bench/results/latest.md)：`
      : `From one \`${report.command}\` on ${day} (${machineLine(report)}; ${report.generator.version}); the full report is [bench/results/latest.md](bench/results/latest.md):`;
  return {
    summary: `${source}\n\n${markdownTable(summaryTable(report, language))}`,
    targets: markdownTable(targetTable(report, language)),
  };
}

/** `text` with each marked section replaced; null when a marker pair is missing. */
export function rewriteMarked(text: string, replacements: Record<string, string>): string | null {
  let result = text;
  for (const [name, body] of Object.entries(replacements)) {
    const start = `<!-- bench:${name} -->`;
    const end = `<!-- /bench:${name} -->`;
    const from = result.indexOf(start);
    const to = result.indexOf(end, from);
    if (from < 0 || to < 0) return null;
    result = `${result.slice(0, from + start.length)}\n${body}\n${result.slice(to)}`;
  }
  return result;
}

/** Rewrite both READMEs (those present, with markers); one line per file on what happened. */
export function updateReadmes(report: BenchReport, root = REPO_ROOT): string[] {
  return README_FILES.map(({ file, language }) => {
    const where = path.join(root, file);
    if (!existsSync(where)) return `${file}: not found, left for whoever adds it (with the <!-- bench:summary --> and <!-- bench:targets --> markers)`;
    const before = readFileSync(where, 'utf8');
    const after = rewriteMarked(before, sections(report, language));
    if (after === null) return `${file}: no <!-- bench:summary --> … <!-- /bench:summary --> and <!-- bench:targets --> … <!-- /bench:targets --> markers, left untouched`;
    if (after === before) return `${file}: already up to date`;
    writeFileSync(where, after);
    return `${file}: summary and targets rewritten`;
  });
}
