/**
 * --trace: every model narrates the calls of its lesson, as it makes them, with their results.
 * For each model, one keep-alive exchange (two requests on one connection, then close) must
 * show the lesson's lines in order; and the transcripts in README.md, README.zh-CN.md and the
 * model's pages must be what the code prints now, after bench/transcripts.ts's normalise() has
 * replaced the numbers that differ from run to run (`npm run transcripts` rewrites them).
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DOCUMENTS, EXCHANGE, SELECT_LIMIT, TRACED_MODELS, markedTranscript, normalise, traceExchange, traceSelectLimit } from '../bench/transcripts.ts';
import { GET, rawExchange } from './helpers/http-client.ts';
import { REPO_ROOT, startModel, waitUntil } from './helpers/server.ts';

/**
 * Match each pattern against a later line than the one before. `<name>` in a pattern stands for
 * a number: the first pattern that uses it captures it, the later ones must show the same one.
 */
function assertInOrder(transcript: string, patterns: string[]): void {
  const lines = transcript.split('\n');
  const known = new Map<string, string>();
  let at = 0;
  for (const pattern of patterns) {
    const named = new Set<string>();
    const source = pattern.replace(/<(\w+)>/g, (_all, name: string) => {
      if (known.has(name)) return known.get(name)!;
      if (named.has(name)) return `\\k<${name}>`;
      named.add(name);
      return `(?<${name}>\\d+)`;
    });
    const regex = new RegExp(`^${source}$`);
    const found = lines.findIndex((line, index) => index >= at && regex.test(line));
    assert.ok(found >= 0, `no line matching /${source}/ after line ${at} of:\n${transcript}`);
    for (const [name, value] of Object.entries(regex.exec(lines[found]!)!.groups ?? {})) known.set(name, value!);
    at = found + 1;
  }
}

const CLIENT = String.raw`127\.0\.0\.1:\d+`;
const GOT_REQUEST = String.raw`= 44 \(${CLIENT}: "GET /hello\.txt HTTP/1\.1"\)`;
const SENT_RESPONSE = String.raw`= (\d+) \(${CLIENT}: "HTTP/1\.1 200 OK"\)`;
const CLIENT_CLOSED = String.raw`= 0 \(${CLIENT}: the client closed its side\)`;

/** The lines of each model's lesson, for the first request and the end of the connection. */
const LESSON_LINES: Record<string, string[]> = {
  '01': [
    String.raw`accept4\(<listener>\) = <fd> \(${CLIENT}\)`,
    String.raw`spawn\(node 01-multiprocess\.cjs --connection-fd 3 …\) = pid <pid> \(our fd <fd> is its fd 3\)`,
    String.raw`close\(<fd>\) = 0 \(${CLIENT}: pid <pid> has its own copy\)`,
    String.raw`\[pid <pid>\] getpeername\(3\) = 0 \(${CLIENT}\)`,
    String.raw`\[pid <pid>\] recv\(3, 65536\) ${GOT_REQUEST}`,
    String.raw`\[pid <pid>\] send\(3, \d+\) ${SENT_RESPONSE}`,
    String.raw`\[pid <pid>\] recv\(3, 65536\) ${CLIENT_CLOSED}`,
    String.raw`\[pid <pid>\] close\(3\) = 0 \(${CLIENT}\)`,
  ],
  '02': [
    String.raw`accept4\(<listener>\) = <fd> \(${CLIENT}\)`,
    String.raw`new Worker\(02-multithread\.cjs\) = thread <thread> \(same process, same descriptor table\)`,
    String.raw`\[thread <thread>\] recv\(<fd>, 65536\) ${GOT_REQUEST}`,
    String.raw`\[thread <thread>\] send\(<fd>, \d+\) ${SENT_RESPONSE}`,
    String.raw`\[thread <thread>\] recv\(<fd>, 65536\) ${CLIENT_CLOSED}`,
    String.raw`\[thread <thread>\] close\(<fd>\) = 0 \(${CLIENT}\)`,
  ],
  '03': [
    String.raw`\[${CLIENT}\] accepted \(libuv's accept4, fd \d+\): serveClient\(\) starts a coroutine`,
    String.raw`\[${CLIENT}\] await recv\(\) …`,
    String.raw`\[${CLIENT}\] … resumed: 44 bytes`,
    String.raw`\[${CLIENT}\] await sendall\(\d+ bytes\) …`,
    String.raw`\[${CLIENT}\] … resumed: write\(\) took them all`,
    String.raw`\[${CLIENT}\] await recv\(\) …`,
    String.raw`\[${CLIENT}\] … resumed: null: the client closed its side`,
  ],
  '04': [
    String.raw`accept4\(<listener>\) = <fd> \(${CLIENT}\)`,
    String.raw`fcntl\(<fd>, F_SETFL, O_RDWR\|O_NONBLOCK\) = 0`,
    String.raw`recv\(<fd>, 65536\) = -1 EAGAIN \(${CLIENT}: nothing yet\)`,
    String.raw`pass: asked 2 sockets, 2 said EAGAIN; sleeping 10 ms`,
    String.raw`  \(the same \d+ times more\)`,
    String.raw`accept4\(<listener>\) = -1 EAGAIN \(nobody waiting\)`,
    String.raw`recv\(<fd>, 65536\) ${GOT_REQUEST}`,
    String.raw`send\(<fd>, \d+\) ${SENT_RESPONSE}`,
    String.raw`pass: asked 2 sockets, 1 said EAGAIN; sleeping 10 ms`,
    String.raw`recv\(<fd>, 65536\) ${CLIENT_CLOSED}`,
    String.raw`close\(<fd>\) = 0 \(${CLIENT}\)`,
  ],
  '05': [
    String.raw`select\(nfds=\d+, read=\{<listener>\}, write=\{\}, timeout=\d+ ms\) = 1 ready: read=\{<listener>\}, write=\{\}`,
    String.raw`accept4\(<listener>\) = <fd> \(${CLIENT}\)`,
    String.raw`fcntl\(<fd>, F_SETFL, O_RDWR\|O_NONBLOCK\) = 0`,
    String.raw`accept4\(<listener>\) = -1 EAGAIN \(nobody waiting\)`,
    String.raw`select\(nfds=\d+, read=\{<listener>,<fd>\}, write=\{\}, timeout=\d+ ms\) = 1 ready: read=\{<fd>\}, write=\{\}`,
    String.raw`recv\(<fd>, 65536\) ${GOT_REQUEST}`,
    String.raw`send\(<fd>, \d+\) ${SENT_RESPONSE}`,
    String.raw`recv\(<fd>, 65536\) ${CLIENT_CLOSED}`,
    String.raw`close\(<fd>\) = 0 \(${CLIENT}\)`,
  ],
  '06': [
    String.raw`epoll_wait\(<epoll>, max 1024, timeout=\d+ ms\) = 1: fd <listener> IN`,
    String.raw`accept4\(<listener>\) = <fd> \(${CLIENT}\)`,
    String.raw`epoll_ctl\(<epoll>, ADD, <fd>, IN\) = 0 \(${CLIENT}\)`,
    String.raw`epoll_wait\(<epoll>, max 1024, timeout=\d+ ms\) = 1: fd <fd> IN \(${CLIENT}\)`,
    String.raw`recv\(<fd>, 65536\) ${GOT_REQUEST}`,
    String.raw`send\(<fd>, \d+\) ${SENT_RESPONSE}`,
    String.raw`recv\(<fd>, 65536\) ${CLIENT_CLOSED}`,
    String.raw`epoll_ctl\(<epoll>, DEL, <fd>\) = 0 \(${CLIENT}\)`,
    String.raw`close\(<fd>\) = 0 \(${CLIENT}\)`,
  ],
  '07': [
    String.raw`  accept fd <listener> = <fd> \(a new connection\)`,
    String.raw`io_uring_enter\(<ring>, submitted 2: accept fd <listener>, recv fd <fd> multishot; timeout=\d+ ms\) = 1 completion:`,
    String.raw`  recv fd <fd> = 44 \(in buffer \d+; still armed\)`,
    String.raw`io_uring_enter\(<ring>, submitted 1: send fd <fd> (\d+) B; timeout=\d+ ms\) = 1 completion:`,
    String.raw`  send fd <fd> = \d+ \(all of it\)`,
    String.raw`  recv fd <fd> = 0 \(the client closed its side; the recv ends\)`,
    String.raw`io_uring_enter\(<ring>, submitted 2: shutdown fd <fd> SHUT_RDWR \(hardlinked to the next\), close fd <fd>; timeout=\d+ ms\) = \d completions?:`,
    String.raw`  close fd <fd> = 0`,
  ],
};

for (const model of TRACED_MODELS) {
  describe(`${model.name} --trace`, () => {
    let transcript = '';
    before(async () => {
      transcript = await traceExchange(model);
    });

    test('one keep-alive exchange: the calls of the lesson, in order, with their results', () => {
      assertInOrder(transcript, LESSON_LINES[model.number]!);
      if (model.number === '02') {
        const accepted = /^accept4\(\d+\) = (\d+)/m.exec(transcript)![1];
        assert.doesNotMatch(transcript, new RegExp(`^close\\(${accepted}\\)`, 'm'), 'the main thread must not close the thread\'s descriptor');
      }
    });

    test('the transcripts in both READMEs and both of its pages are what it prints now', () => {
      for (const document of documentsWith(EXCHANGE(model))) {
        assert.equal(normalise(document.transcript), normalise(transcript), `${document.file} (run \`npm run transcripts\` to rewrite it)`);
      }
    });
  });
}

/** Every document (README or page) with this transcript's markers, and the transcript in it. */
function documentsWith(name: string): { file: string; transcript: string }[] {
  const found = DOCUMENTS.flatMap(({ file }) => {
    const transcript = markedTranscript(readFileSync(path.join(REPO_ROOT, file), 'utf8'), name);
    return transcript === null ? [] : [{ file, transcript }];
  });
  const expected = name === SELECT_LIMIT ? ['README.md', 'README.zh-CN.md', 'www/guide/05-select.html', 'www/zh/05-select.html'] : undefined;
  const model = TRACED_MODELS.find((candidate) => EXCHANGE(candidate) === name);
  const files = expected ?? ['README.md', 'README.zh-CN.md', `www/guide/${model!.name}.html`, `www/zh/${model!.name}.html`];
  assert.deepEqual(found.map(({ file }) => file), files, `the documents with the ${name} markers`);
  return found;
}

describe('05-select --trace, past FD_SETSIZE', () => {
  test('the connection whose descriptor select() cannot watch: its 503, as the pages show it', async () => {
    const transcript = await traceSelectLimit();
    assertInOrder(transcript, [
      String.raw`select\(nfds=1024, read=\{\d+,\d+,\d+,…,1022,1023\} \(\d+ fds\), write=\{\}, timeout=\d+ ms\) = 1 ready: read=\{<listener>\}, write=\{\}`,
      String.raw`accept4\(<listener>\) = 1024 \(${CLIENT}\)`,
      String.raw`send\(1024, \d+\) = \d+ \(${CLIENT}: "HTTP/1\.1 503 Service Unavailable"\)`,
      String.raw`close\(1024\) = 0 \(${CLIENT}\)`,
    ]);
    for (const document of documentsWith(SELECT_LIMIT)) {
      assert.equal(normalise(document.transcript), normalise(transcript), `${document.file} (run \`npm run transcripts\` to rewrite it)`);
    }
  });
});

describe('normalise(): what may differ between two runs, and what may not', () => {
  const run = [
    'select(nfds=29, read={28}, write={}, timeout=412 ms) = 1 ready: read={28}, write={}',
    'accept4(28) = 30 (127.0.0.1:40446)',
    'select(nfds=31, read={28,30}, write={}, timeout=500 ms) = 0 (timed out)',
    '  (the same 3 times more)',
    'recv(30, 65536) = 44 (127.0.0.1:40446: "GET /hello.txt HTTP/1.1")',
    'send(30, 337) = 337 (127.0.0.1:40446: "HTTP/1.1 200 OK")',
  ].join('\n');

  test('another run: other descriptors, ports and waits, a timeout more or less', () => {
    const other = run
      .replaceAll('28', '17')
      .replaceAll('30', '19')
      .replaceAll('29', '18')
      .replaceAll('31', '20')
      .replaceAll('40446', '51234')
      .replace('timeout=412', 'timeout=88')
      .split('\n')
      .filter((line) => !line.includes('timed out') && !line.includes('the same'))
      .join('\n');
    assert.equal(normalise(other), normalise(run));
  });

  test('a different byte count, call, result or order is a difference', () => {
    assert.notEqual(normalise(run.replace('= 337 (', '= 336 (')), normalise(run));
    assert.notEqual(normalise(run.replace('recv(30', 'recv(28')), normalise(run));
    assert.notEqual(normalise(run.replace('= 1 ready: read={28}', '= 1 ready: read={30}')), normalise(run));
    const lines = run.split('\n');
    assert.notEqual(normalise([...lines.slice(0, 4), lines[5], lines[4]].join('\n')), normalise(run));
  });
});

describe('--trace under load', () => {
  test('past 1000 lines a second it drops lines, says how many once, and goes on serving', async (t) => {
    const server = await startModel(t, '06-epoll.ts', { args: ['--trace'] });
    const request = Buffer.from(GET('/hello.txt'));
    // Four connections, each sending requests back to back for two seconds: thousands of lines.
    const until = Date.now() + 2000;
    let answered = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        const socket = net.connect(server.port, '127.0.0.1');
        socket.on('error', () => {}); // a reset under load is no failure; the answers counted are what matter
        socket.on('data', (chunk: Buffer) => (answered += chunk.toString('latin1').split('HTTP/1.1 200').length - 1));
        await once(socket, 'connect'); // rejects if the connection fails
        while (Date.now() < until) {
          socket.write(request);
          await sleep(1);
        }
        socket.end();
      }),
    );
    assert.ok(await waitUntil(() => /trace: \d+ lines dropped \(over 1000 a second/.test(server.output()), 5000), 'a line says how many were dropped');
    const drops = server.output().match(/trace: \d+ lines dropped/g)!;
    assert.ok(drops.length <= 4, `the count comes once per second of drops, not per line (${drops.length} of them)`);
    assert.ok(answered > 100, `the server went on answering (${answered} answers)`);
    assert.equal((await rawExchange(server.port, GET('/hello.txt'))).status, 200, 'served afterwards');
  });
});
