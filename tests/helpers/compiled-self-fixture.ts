/**
 * Compiled by tests/compiled-self.test.ts with shared/compiled-self.ts and run as the plain
 * JavaScript it becomes: prints, as one JSON line, what it sees from there.
 */
import koffi from 'koffi';
import mime from 'mime-types';
import { DEFAULT_ROOT } from '../../shared/cli.ts';

const questions = JSON.parse(process.argv[2] ?? '[]') as string[];
process.stdout.write(
  JSON.stringify({
    url: import.meta.url,
    defaultRoot: DEFAULT_ROOT,
    koffi: typeof koffi.load,
    contentTypes: questions.map((question) => mime.contentType(question)),
    lookup: mime.lookup('page.HTML'),
  }) + '\n',
);
