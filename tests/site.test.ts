/**
 * www/ is the tour, and a reader browses it through a running model. This test starts one
 * (06-epoll), crawls the site from / the way a browser would (every <a href>, <img src> and
 * <link href> on every page reached), and fails on anything that is not a 200. It also checks
 * what a reader without JavaScript or without eyesight needs: every image has alt text, every
 * figure has a <title>, every page is reachable from /, and each numbered lesson has its page
 * and figure in both languages. Each figure in www/images/ has a Chinese variant of the same name
 * in www/images/zh/, which the Chinese pages and README.zh-CN.md show, and which records the
 * fingerprint of the English text it translates: a change to the English text fails here until
 * the translation follows. The benchmark's figures (bench/results/) come in both languages the
 * same way, drawn by the bench, and the READMEs show each in its language.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, startModel } from './helpers/server.ts';
import { CHINESE, assertTranslation } from './helpers/translated-figure.ts';

const WWW = path.join(REPO_ROOT, 'www');
const LESSONS = readdirSync(REPO_ROOT).filter((name) => /^0\d-[\w-]+\.ts$/.test(name)).map((name) => name.slice(0, -3));
const IMAGES = path.join(WWW, 'images');
/** The figures (01-multiprocess.svg …, polling-vs-events.svg); each has its Chinese variant in images/zh/. */
const FIGURES = readdirSync(IMAGES).filter((name) => name.endsWith('.svg'));
/** The benchmark's results (the chart, the crowd figure); each has its Chinese variant in zh/. */
const BENCH_RESULTS = path.join(REPO_ROOT, 'bench', 'results');
const BENCH_FIGURES = readdirSync(BENCH_RESULTS).filter((name) => name.endsWith('.svg'));

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
    checkFigure(figure, english, { title: 10, desc: 40 });
    const inChinese = checkFigure(`zh/${figure}`, chinese, { title: 5, desc: 40 });
    assert.match(inChinese.title, CHINESE, `zh/${figure}: the <title> is in Chinese`);
    assert.match(inChinese.desc, CHINESE, `zh/${figure}: the <desc> is in Chinese`);
    assertTranslation(figure, english, chinese);
  });
}

test('the benchmark\'s figures: latest.svg and crowd.svg in bench/results/, each with its Chinese translation in zh/', () => {
  assert.deepEqual(BENCH_FIGURES.sort(), ['crowd.svg', 'latest.svg']);
  for (const figure of BENCH_FIGURES) {
    const chinese = path.join(BENCH_RESULTS, 'zh', figure);
    assert.ok(existsSync(chinese), `bench/results/zh/${figure} is there (npm run bench -- --update-readme draws it from latest.json)`);
    assertTranslation(figure, readFileSync(path.join(BENCH_RESULTS, figure), 'utf8'), readFileSync(chinese, 'utf8'));
  }
});

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
  const shown = new Map<string, Set<string>>(documents.map((document) => [document, new Set()]));
  let shownInChinese = 0;
  for (const document of documents) {
    const inChinese = document.startsWith('www/zh/') || document === 'README.zh-CN.md';
    for (const src of figuresShownIn(readFileSync(path.join(REPO_ROOT, document), 'utf8'))) {
      const file = path.resolve(REPO_ROOT, path.dirname(document), src);
      // A figure of www/images/ or of the benchmark's results, each with its Chinese variant in zh/.
      const folder = [IMAGES, BENCH_RESULTS].find((each) => !path.relative(each, file).startsWith('..'));
      assert.ok(folder, `${document} shows ${src}, which is neither in www/images/ nor in bench/results/`);
      const figure = path.relative(folder, file);
      assert.ok(existsSync(file), `${document} shows ${src}, which is not there`);
      const expected = inChinese ? path.join('zh', path.basename(figure)) : path.basename(figure);
      assert.equal(figure, expected, `${document} shows ${src}: a${inChinese ? ' Chinese' : 'n English'} page shows ${path.relative(REPO_ROOT, path.join(folder, expected))}`);
      shown.get(document)!.add(path.relative(REPO_ROOT, file));
      if (inChinese) shownInChinese++;
    }
  }
  assert.ok(shownInChinese >= 2 * LESSONS.length, `the Chinese pages and README show ${shownInChinese} figures: is the picking broken?`);
  // Each README shows every figure of the benchmark, in its language.
  for (const [readme, folder] of [['README.md', 'bench/results'], ['README.zh-CN.md', 'bench/results/zh']] as const) {
    for (const figure of BENCH_FIGURES) assert.ok(shown.get(readme)!.has(`${folder}/${figure}`), `${readme} shows ${folder}/${figure}`);
  }
});
