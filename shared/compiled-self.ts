/**
 * shared/compiled-self.ts: a lesson file as ONE plain JavaScript file, compiled once at start,
 * for the processes of 01-multiprocess.ts and the threads of 02-multithread.ts to run.
 *
 * Why. Under `npx tsx FILE.ts`, TypeScript is compiled while it loads, by a module loader tsx
 * installs into Node. A new process or a new worker thread starts with no such loader, so
 * starting "this file again" through tsx installs it once more, in every one of them: measured
 * on the 2-core machine these lessons were written on, a child process of 01 then took 0.3 to
 * 1 s to its first byte and held ~85 MiB, a thread of 02 0.2 to 0.6 s and ~30 MiB (Node runs a
 * loader on a thread and JavaScript engine of its own, so each such thread was really two).
 * That is the price of tsx, not of a process or a thread: compiled as below, ~60 ms and ~46 MiB
 * for a process, ~45 ms and ~10 MiB for a thread. The code does not change while the server
 * runs, so the server compiles it once, when it starts: esbuild (the compiler tsx itself uses)
 * bundles the lesson file and the shared/ modules it imports into one JavaScript file, and
 * every child process or thread runs that, with no loader at all.
 *
 * Why CommonJS (a .cjs file). Node runs a .cjs file as CommonJS whatever the surrounding
 * package.json says, and its CommonJS loader is lighter than its ES module loader: here ~10 ms
 * of CPU and ~1.6 MiB less in every process. (It also means no top-level `await`: the lesson
 * files start from a main() called at the bottom.)
 *
 * Where the file goes. Into a new folder under the system's temporary directory, made for this
 * server alone (mkdtemp) and removed when it exits: several servers running at once each have
 * their own and never delete another's, and the lesson's own folder may be read-only. (A server
 * killed with SIGKILL cannot clean up: its folder, ~120 KB, stays until the next reboot.) A stack
 * trace from a child or thread names that file: plain, readable JavaScript, one module after
 * another, with the source's function names.
 *
 * What stays outside the bundle:
 *   - Node's built-in modules;
 *   - packages from node_modules (koffi, with its native library): the bundle requires them
 *     by absolute path, found from the importing file as Node would, because the temporary
 *     folder has no node_modules next to it;
 *   - `import.meta.url` keeps naming the .ts file it is written in, so a path computed from
 *     it (the default www/ folder in shared/cli.ts) is the same in the bundle.
 *
 * And one package is asked in advance. Loading mime-types means reading its database of some
 * 2,500 media types and ranking the candidates for each of ~1,200 file extensions: 10 to 14 ms
 * of CPU and ~1.7 MiB in every process and thread (a whole thread of 02 costs ~35 ms). Its
 * answers never change, so the server asks it once, here, for every extension it knows, and
 * the bundle carries those answers instead; anything else (a whole media type, an extension in
 * capitals) still goes to mime-types itself, loaded on that first need.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * The environment for a child process that runs a compiled copy: ours, less NODE_EXTRA_CA_CERTS.
 * When that variable is set (proxies and CI machines set it; this one does), Node 20 reads and
 * parses every certificate in the file as it starts, before any of our code runs: here 144 of
 * them, ~40 ms of CPU, more than half of what a child of 01 costs. A server's child never makes
 * a TLS connection. (Node 22 and later read the file only when a TLS connection needs it.)
 */
export function childEnvironment(): NodeJS.ProcessEnv {
  return { ...process.env, NODE_EXTRA_CA_CERTS: undefined };
}

/** One compilation per lesson file and server, shared by every process or thread it starts. */
const compiled = new Map<string, Promise<string>>();

/**
 * The path of a JavaScript file that does what the TypeScript module at `moduleUrl` (its
 * import.meta.url) does, imports included. The first call compiles; later calls reuse it.
 */
export function compiledCopyOf(moduleUrl: string): Promise<string> {
  let result = compiled.get(moduleUrl);
  if (result === undefined) {
    result = compile(fileURLToPath(moduleUrl));
    compiled.set(moduleUrl, result);
  }
  return result;
}

async function compile(sourceFile: string): Promise<string> {
  const folder = mkdtempSync(path.join(tmpdir(), 'concurrent-webserver-'));
  process.on('exit', () => rmSync(folder, { recursive: true, force: true }));
  const outfile = path.join(folder, `${path.basename(sourceFile, path.extname(sourceFile))}.cjs`);

  // Loaded here, not at the top: the compiled copy contains this module too, and the processes
  // and threads that run it must not pay for loading the compiler they will never call.
  const esbuild = await import('esbuild').catch((error: Error) => {
    throw new Error(`${path.basename(sourceFile)} needs esbuild (it comes with tsx; or: npm install esbuild): ${error.message}`);
  });
  try {
    await esbuild.build({
      entryPoints: [sourceFile],
      outfile,
      bundle: true,
      format: 'cjs', // see "Why CommonJS" above
      platform: 'node',
      target: `node${process.versions.node}`, // the very node that will run it
      logLevel: 'silent', // a failure is thrown, with esbuild's messages in it
      plugins: [{ name: 'keep-packages-and-urls', setup: keepPackagesAndUrls }],
    });
  } finally {
    // esbuild compiles in a helper process of its own; it is not needed any more.
    await esbuild.stop();
  }
  return outfile;
}

/** The esbuild plugin that leaves packages outside and keeps import.meta.url (see the header). */
function keepPackagesAndUrls(build: import('esbuild').PluginBuild): void {
  // A bare specifier ('koffi', 'node:fs'): not a path of ours.
  build.onResolve({ filter: /^[^./]/ }, ({ path: specifier, importer }) => {
    if (specifier.startsWith('node:') || builtinModules.includes(specifier)) return { external: true };
    const resolved = createRequire(importer).resolve(specifier);
    if (specifier === 'mime-types') return { path: resolved, namespace: 'answered-in-advance' };
    return { path: resolved, external: true };
  });
  build.onLoad({ filter: /.*/, namespace: 'answered-in-advance' }, ({ path: library }) => ({
    contents: mimeTypesAnsweredInAdvance(library),
    loader: 'js',
  }));
  // ...whose one import is the real library, left outside like any other package.
  build.onResolve({ filter: /.*/, namespace: 'answered-in-advance' }, ({ path: library }) => ({ path: library, external: true }));
  build.onLoad({ filter: /\.[cm]?[jt]s$/, namespace: 'file' }, ({ path: file }) => ({
    contents: readFileSync(file, 'utf8').replace(/\bimport\.meta\.url\b/g, JSON.stringify(pathToFileURL(file).href)),
    loader: file.endsWith('ts') ? 'ts' : 'js',
  }));
}

/**
 * The source of a stand-in for mime-types (see the header): contentType() answers from a table
 * of what the real one said, here and now, for '' and for '.' + every extension it knows; any
 * other question, and any other function, goes to the real library, required on first use.
 */
function mimeTypesAnsweredInAdvance(library: string): string {
  const mime = createRequire(library)(library) as typeof import('mime-types');
  const answers: Record<string, string | false> = { '': mime.contentType('') };
  for (const extension of Object.keys(mime.types)) answers[`.${extension}`] = mime.contentType(`.${extension}`);
  return `
    const answers = JSON.parse(${JSON.stringify(JSON.stringify(answers))});
    let loaded;
    const real = () => (loaded ??= require(${JSON.stringify(library)}));
    module.exports = {
      contentType: (text) => (Object.hasOwn(answers, text) ? answers[text] : real().contentType(text)),
    };
    for (const name of ${JSON.stringify(Object.keys(mime).filter((name) => name !== 'contentType'))}) {
      Object.defineProperty(module.exports, name, { enumerable: true, get: () => real()[name] });
    }
  `;
}
