/**
 * www/ is the tour, and a reader browses it through a running model. This test starts one
 * (06-epoll), crawls the site from / the way a browser would (every <a href>, <img src> and
 * <link href> on every page reached), and fails on anything that is not a 200. It also checks
 * what a reader without JavaScript or without eyesight needs: every image has alt text, every
 * figure has a <title>, every page is reachable from /, and each numbered lesson has its page
 * and figure in both languages. Each figure in www/images/ has a Chinese variant of the same name
 * in www/images/zh/, which the Chinese pages and README.zh-CN.md show, and which records the
 * fingerprint of the English text it translates: a change to the English text fails here until
 * the translation follows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fingerprintOf, textsOf } from '../bench/figure-text.ts';
import { REPO_ROOT, startModel } from './helpers/server.ts';

const WWW = path.join(REPO_ROOT, 'www');
const LESSONS = readdirSync(REPO_ROOT).filter((name) => /^0\d-[\w-]+\.ts$/.test(name)).map((name) => name.slice(0, -3));
const IMAGES = path.join(WWW, 'images');
/** The figures (01-multiprocess.svg …, polling-vs-events.svg); each has its Chinese variant in images/zh/. */
const FIGURES = readdirSync(IMAGES).filter((name) => name.endsWith('.svg'));
const CHINESE = /[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]/;
/** Fonts with Chinese glyphs on macOS, Windows and Linux; one of them must be in every font list of a zh figure. */
const CHINESE_FONTS = ['PingFang SC', 'Microsoft YaHei', 'Noto Sans CJK SC'];
/** Two English words in a row (not a call such as `await recv()`): a label nobody translated. */
const ENGLISH_PHRASE = /\b[a-z]{3,}[ ,]+[a-z]{2,}\b(?!\()/;

/** Every file under www/, as a site path ("/guide/index.html"). */
function filesOfSite(folder = WWW, prefix = '/'): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesOfSite(path.join(folder, entry.name), `${prefix}${entry.name}/`) : [`${prefix}${entry.name}`],
  );
}

/** The links, images and stylesheets of one page: href/src of <a>, <img>, <link>. */
function referencesOf(html: string): { tag: string; url: string; alt?: string }[] {
  const found = [];
  for (const [element, tag] of html.matchAll(/<(a|img|link)\b[^>]*>/gi)) {
    const url = element.match(/\s(?:href|src)="([^"]*)"/i)?.[1];
    if (url === undefined) continue;
    const alt = element.match(/\salt="([^"]*)"/i)?.[1];
    found.push({ tag: tag!.toLowerCase(), url: url.replace(/&amp;/g, '&'), ...(alt === undefined ? {} : { alt }) });
  }
  return found;
}

test('the site, crawled from / through a running model: every link, image and stylesheet is a 200', async (t) => {
  const server = await startModel(t, '06-epoll.ts');
  const origin = new URL(server.url).origin;
  const seen = new Map<string, number>(); // path → status
  const problems: string[] = [];
  const queue: { url: URL; from: string }[] = [{ url: new URL('/', origin), from: '(start)' }];
  while (queue.length > 0) {
    const { url, from } = queue.shift()!;
    if (url.origin !== origin) {
      problems.push(`${from} links outside the site: ${url.href}`);
      continue;
    }
    const key = url.pathname;
    if (seen.has(key)) continue;
    const response = await fetch(url);
    const body = await response.text();
    seen.set(key, response.status);
    if (response.status !== 200) {
      problems.push(`${decodeURIComponent(key)} (linked from ${from}) answered ${response.status}`);
      continue;
    }
    if (!(response.headers.get('content-type') ?? '').startsWith('text/html')) continue;
    if (/<script\b/i.test(body)) problems.push(`${decodeURIComponent(key)} has a <script>: the site works without JavaScript`);
    for (const reference of referencesOf(body)) {
      if (reference.tag === 'img' && !reference.alt?.trim()) problems.push(`${decodeURIComponent(key)}: <img src="${reference.url}"> has no alt text`);
      queue.push({ url: new URL(reference.url, url), from: decodeURIComponent(key) });
    }
  }
  await server.stop();

  assert.deepEqual(problems, []);
  // Every page and figure of www/ was reached from / (an orphan page is a page nobody finds).
  const reached = new Set([...seen.keys()].map((key) => decodeURIComponent(key === '/' ? '/index.html' : key.endsWith('/') ? `${key}index.html` : key)));
  const unreached = filesOfSite().filter((file) => /\.(html|svg|css)$/.test(file) && !reached.has(file));
  assert.deepEqual(unreached, [], 'pages or figures that no link reaches');
});

test('each numbered lesson has a page in both languages, showing its figure in that language', () => {
  assert.ok(LESSONS.length >= 6);
  for (const lesson of LESSONS) {
    for (const [page, figure] of [
      [`guide/${lesson}.html`, `../images/${lesson}.svg`],
      [`zh/${lesson}.html`, `../images/zh/${lesson}.svg`],
    ] as const) {
      const html = readFileSync(path.join(WWW, page), 'utf8');
      assert.ok(html.includes(`src="${figure}"`), `${page} shows ${figure}`);
    }
    assert.ok(FIGURES.includes(`${lesson}.svg`), `www/images/${lesson}.svg is there`);
  }
});

/** What every figure is, in either language: announced as an image, named, described, and standalone. */
function checkFigure(file: string, svg: string, shortest: { title: number; desc: number }) {
  const root = svg.match(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]* viewBox="0 0 \d+ \d+"[^>]* role="img"[^>]*>/)?.[0];
  assert.ok(root, `${file} starts with <svg xmlns=… viewBox=… role="img">`);
  const [, titleId, descId] = root.match(/ aria-labelledby="(\w+) (\w+)"/) ?? [];
  assert.ok(titleId && descId, `${file}: aria-labelledby names its title and desc`);
  const title = svg.match(new RegExp(`<title id="${titleId}">([^<]*)</title>`))?.[1] ?? '';
  const desc = svg.match(new RegExp(`<desc id="${descId}">([^<]*)</desc>`))?.[1] ?? '';
  assert.ok(title.length >= shortest.title, `${file}: <title id="${titleId}"> of ${shortest.title} characters or more: '${title}'`);
  assert.ok(desc.length >= shortest.desc, `${file}: <desc id="${descId}"> of ${shortest.desc} characters or more`);
  assert.doesNotMatch(svg, /<script|<foreignObject|@import|@font-face|https?:\/\/(?!www\.w3\.org\/)/, `${file} stands alone: no script, no web font, nothing fetched`);
  return { root, title, desc };
}

for (const figure of FIGURES) {
  test(`${figure} and its Chinese variant zh/${figure}: named, described, standalone, and kept in step`, () => {
    const english = readFileSync(path.join(IMAGES, figure), 'utf8');
    const chinese = readFileSync(path.join(IMAGES, 'zh', figure), 'utf8');
    const inEnglish = checkFigure(figure, english, { title: 10, desc: 40 });
    const inChinese = checkFigure(`zh/${figure}`, chinese, { title: 5, desc: 40 });

    // The same drawing: same size, and one <text> for each of the English figure's.
    const size = (root: string) => root.match(/ viewBox="[^"]*"| width="[^"]*"| height="[^"]*"/g);
    assert.deepEqual(size(inChinese.root), size(inEnglish.root), `zh/${figure} has the size of ${figure}`);
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
    assert.match(inChinese.root, / lang="zh-CN"/, `zh/${figure}: <svg lang="zh-CN">`);
    assert.match(inChinese.title, CHINESE, `zh/${figure}: the <title> is in Chinese`);
    assert.match(inChinese.desc, CHINESE, `zh/${figure}: the <desc> is in Chinese`);
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
  });
}

/** The SVG figures a page or README shows: <img src="…svg"> and ![…](…svg). */
function figuresShownIn(text: string): string[] {
  return [...text.matchAll(/<img\b[^>]*\ssrc="([^"]+\.svg)"|!\[[^\]]*\]\(([^)\s]+\.svg)\)/g)].map(([, src, link]) => (src ?? link)!);
}

test('the Chinese pages and README.zh-CN.md show the Chinese figures, the English ones the English figures', () => {
  const documents = [
    ...filesOfSite().filter((file) => file.endsWith('.html')).map((file) => path.join('www', file)),
    'README.md',
    'README.zh-CN.md',
  ];
  let shownInChinese = 0;
  for (const document of documents) {
    const inChinese = document.startsWith('www/zh/') || document === 'README.zh-CN.md';
    for (const src of figuresShownIn(readFileSync(path.join(REPO_ROOT, document), 'utf8'))) {
      const figure = path.relative(IMAGES, path.resolve(REPO_ROOT, path.dirname(document), src));
      if (figure.startsWith('..')) continue; // not a figure of www/images/ (the benchmark's chart)
      assert.ok(existsSync(path.join(IMAGES, figure)), `${document} shows ${src}, which is not there`);
      const expected = inChinese ? path.join('zh', path.basename(figure)) : path.basename(figure);
      assert.equal(figure, expected, `${document} shows ${src}: a${inChinese ? ' Chinese' : 'n English'} page shows images/${expected}`);
      if (inChinese) shownInChinese++;
    }
  }
  assert.ok(shownInChinese >= 2 * LESSONS.length, `the Chinese pages and README show ${shownInChinese} figures: is the picking broken?`);
});
