/**
 * A Chinese figure (zh/NAME.svg) as the translation of its English one (NAME.svg): the same
 * drawing, the fingerprint of the English text it translates, the language and fonts of a
 * Chinese page, and every label translated. tests/site.test.ts checks the figures of www/images/
 * and bench/results/ with it; tests/bench.test.ts the ones a bench run writes.
 */
import assert from 'node:assert/strict';
import { fingerprintOf, textsOf } from '../../bench/figure-text.ts';

/** A character of Chinese text: CJK ideographs and punctuation, full-width forms. */
export const CHINESE = /[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]/;
/** Fonts with Chinese glyphs on macOS, Windows and Linux; one of them must be in every font list of a zh figure. */
const CHINESE_FONTS = ['PingFang SC', 'Microsoft YaHei', 'Noto Sans CJK SC'];
/** Two English words in a row (not a call such as `await recv()`): a label nobody translated. */
const ENGLISH_PHRASE = /\b[a-z]{3,}[ ,]+[a-z]{2,}\b(?!\()/;

/** The <svg …> start tag of a figure. */
function rootOf(svg: string): string {
  const root = svg.match(/^<svg\b[^>]*>/)?.[0];
  assert.ok(root, 'the figure starts with <svg …>');
  return root;
}

/** Fails unless `chinese` (zh/`figure`) is a translation of `english` (`figure`), kept in step. */
export function assertTranslation(figure: string, english: string, chinese: string): void {
  // The same drawing: same size, and one <text> for each of the English figure's.
  const size = (svg: string) => rootOf(svg).match(/ viewBox="[^"]*"| width="[^"]*"| height="[^"]*"/g);
  assert.deepEqual(size(chinese), size(english), `zh/${figure} has the size of ${figure}`);
  const englishTexts = textsOf(english);
  const chineseTexts = textsOf(chinese);
  assert.equal(chineseTexts.length, englishTexts.length, `zh/${figure} has as many <text> as ${figure}: one translation for each`);
  const translated = chinese.match(new RegExp(`<!-- A translation of \\.\\./${figure.replace(/\./g, '\\.')}, whose text has the fingerprint ([0-9a-f]{12})`))?.[1];
  assert.equal(
    translated,
    fingerprintOf(english),
    `the text of ${figure} is not the one zh/${figure} translates: bring the translation up to date, then record ${fingerprintOf(english)} in its first comment`,
  );

  // In Chinese: the page's language, fonts that have the glyphs, and every label translated.
  assert.match(rootOf(chinese), / lang="zh-CN"/, `zh/${figure}: <svg lang="zh-CN">`);
  const fontLists = [...chinese.matchAll(/font-family(?:="|:\s*)([^";]+)/g)].map(([, fonts]) => fonts!);
  assert.ok(fontLists.length > 0, `zh/${figure} names its fonts`);
  for (const fonts of fontLists) {
    assert.ok(CHINESE_FONTS.some((font) => fonts.includes(font)), `zh/${figure}: font-family ${fonts} names a Chinese font`);
  }
  chineseTexts.forEach((text, index) => {
    const original = englishTexts[index]!;
    // A label is translated, or it is code kept as it is (accept(), EAGAIN, fd 29): the English text, or a word of it
    // ("(SQ)" of "queue (SQ)").
    if (CHINESE.test(text)) return;
    assert.ok(text === original || original.split(' ').includes(text), `zh/${figure}: <text> ${index + 1} is '${text}' in Chinese, '${original}' in English`);
    assert.doesNotMatch(text, ENGLISH_PHRASE, `zh/${figure}: <text> ${index + 1} '${text}' is still in English`);
  });
}
