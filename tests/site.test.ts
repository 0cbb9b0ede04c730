/**
 * www/ is the tour, and a reader browses it through a running model. This test starts one
 * (06-epoll), crawls the site from / the way a browser would (every <a href>, <img src> and
 * <link href> on every page reached), and fails on anything that is not a 200. It also checks
 * what a reader without JavaScript or without eyesight needs: every image has alt text, every
 * figure has a <title>, every page is reachable from /, and each numbered lesson has its page
 * and figure in both languages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, startModel } from './helpers/server.ts';

const WWW = path.join(REPO_ROOT, 'www');
const LESSONS = readdirSync(REPO_ROOT).filter((name) => /^0\d-[\w-]+\.ts$/.test(name)).map((name) => name.slice(0, -3));

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

test('each numbered lesson has a page in both languages and a figure with a <title> and <desc>', () => {
  assert.ok(LESSONS.length >= 6);
  for (const lesson of LESSONS) {
    for (const page of [`guide/${lesson}.html`, `zh/${lesson}.html`]) {
      const html = readFileSync(path.join(WWW, page), 'utf8');
      assert.ok(html.includes(`src="../images/${lesson}.svg"`), `${page} shows its figure`);
    }
    const svg = readFileSync(path.join(WWW, 'images', `${lesson}.svg`), 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]* viewBox="0 0 \d+ \d+"[^>]* role="img"/);
    assert.match(svg, /<title id="title">[^<]{10,}<\/title>/);
    assert.match(svg, /<desc id="desc">[^<]{40,}<\/desc>/);
    assert.doesNotMatch(svg, /<script|<foreignObject|https?:\/\/(?!www\.w3\.org\/)/, `${lesson}.svg stands alone: no script, nothing fetched`);
  }
});
