/**
 * bench/figure-text.ts: what a figure says, and its fingerprint. A Chinese figure
 * (www/images/zh/NAME.svg) records the fingerprint of the English text it translates;
 * tests/helpers/translated-figure.ts (for tests/site.test.ts and tests/bench.test.ts) compares
 * it with the English figure's, and bench/chart.ts and bench/crowd-chart.ts write it into the
 * Chinese figures they draw.
 */
import { createHash } from 'node:crypto';

/** `content` as the text of an XML or HTML element (the only place the bench writes text): &, < and > escaped. */
export function escapeXml(content: string): string {
  return content.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The text escapeXml escaped. */
export function unescapeXml(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** The text a reader sees in each <text> of a figure, in document order (tspans joined). */
export function textsOf(svg: string): string[] {
  return [...svg.matchAll(/<text\b[^>]*>([\s\S]*?)<\/text>/g)].map(([, inner]) => unescapeXml(inner!.replace(/<[^>]+>/g, '')).trim());
}

/** What a figure says, in 12 hex digits: a hash of its <title>, <desc> and <text>s. */
export function fingerprintOf(svg: string): string {
  const said = [/<title\b[^>]*>([^<]*)<\/title>/, /<desc\b[^>]*>([^<]*)<\/desc>/].map((element) => svg.match(element)?.[1] ?? '');
  return createHash('sha256').update([...said, ...textsOf(svg)].join('\n')).digest('hex').slice(0, 12);
}

/** The first comment of zh/NAME: which English figure it translates, and that figure's fingerprint. */
export function translationComment(figure: string, english: string): string {
  return `<!-- A translation of ../${figure}, whose text has the fingerprint ${fingerprintOf(english)} (tests/site.test.ts) -->`;
}
