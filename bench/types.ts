/**
 * bench/types.ts: the shapes every part of the bench shares (a server, a step, a row of
 * results, what a scenario is). Types only, from load.ts, proc.ts and site.ts, which import
 * none of the modules that use them: so no two modules of bench/ import each other
 * (tests/bench.test.ts checks that there is no import cycle).
 */
import type { LoadGenerator, LoadResult } from './load.ts';
import type { Patience, WindowUsage } from './proc.ts';
import type { Site } from './site.ts';

export type ScenarioName = 'keepalive' | 'close' | 'bigfile' | 'c10k' | 'crowd' | 'slowloris';
export type LoadScenario = 'keepalive' | 'close' | 'bigfile';

export interface RunningServer {
  url: string;
  port: number;
  /** Root of the server's process tree (the model's own node process; nginx's master). */
  pid: number;
  /** Lines the server printed, from `mark` on (see `outputMark`). */
  outputSince(mark: number): string[];
  outputMark(): number;
  stop(): Promise<'stopped' | 'killed'>;
}

export interface ServerSpec {
  /** What `--model` matches: '06-epoll', '01-pool', 'node-http', 'nginx', 'nginx-cache', 'c-ceiling', 'js-floor'. */
  id: string;
  /** As shown in the report: '01-multiprocess --pool 16'. */
  label: string;
  kind: 'model' | 'pool' | 'reference';
  /**
   * Most connections this server is given at once, in any scenario, and why: a pool serves
   * only as many as it has workers; a model that starts a process or a thread for each
   * connection is held to what the machine survives in the time the bench has.
   */
  cap: { connections: number; why: string } | null;
  /**
   * In the crowd scenario, a limit below the descriptor limit, and why: select() watches
   * descriptor numbers below 1024 only; nginx has worker_connections; 04 is held to what it
   * serves within the bench's time. null: only the descriptor limit stops it.
   */
  crowdLimit: { connections?: number; descriptorsBelow?: number; why: string } | null;
  /**
   * Serves each connection with a process or thread of its own that ends with it: nothing of
   * a warm-up carries over to the next connection, so the bench skips it.
   */
  freshWorkerPerConnection: boolean;
  /** Only these scenarios make sense for this server (null: all), and why. */
  only: { scenarios: ScenarioName[]; why: string } | null;
  /** Said in the report under the tables. */
  note: string | null;
  launch(site: Site, options?: LaunchOptions): Promise<RunningServer>;
}

/** How a scenario may want a server started, beyond the bench's usual flags. */
export interface LaunchOptions {
  /** Seconds a request head may take from its first byte (--request-timeout; nginx: client_header_timeout). */
  requestTimeoutSeconds?: number;
  /** 01 and 02: processes or threads at once (--max-clients). */
  maxClients?: number;
}

export interface Settings {
  quick: boolean;
  /** Length of each measured load, in seconds. */
  seconds: number;
  warmupSeconds: number;
  keepAliveConnections: number[];
  closeConnections: number;
  bigFileConnections: number;
  idleLevels: number[];
  /** The CPU targets in alternation (bench/paired.ts): rounds, and seconds per turn. */
  pairedRounds: number;
  pairedSeconds: number;
  /** The crowd scenario (bench/crowd.ts): idle connections held at each level, and the loads measured beside them at each. */
  crowdLevels: number[];
  /** Light first: the claims are read on it (bench/report.ts). */
  crowdLoads: CrowdLoad[];
  /** The slowloris scenario (bench/slowloris.ts): the servers' request deadline, and the length of the normal load's window. */
  slowRequestTimeout: number;
  slowSeconds: number;
}

/** One load of the crowd scenario: `active` busy keep-alive connections for `seconds`. */
export interface CrowdLoad {
  active: number;
  seconds: number;
}

export interface Step {
  server: ServerSpec;
  scenario: ScenarioName;
  /** Concurrent connections; for c10k and crowd the idle connections to hold, for slowloris the trickling ones. */
  connections: number;
}

export interface LoadRow {
  server: string;
  scenario: LoadScenario;
  connections: number;
  load: LoadResult;
  usage: WindowUsage;
}

export interface IdleRow {
  server: string;
  requested: number;
  /** Below what was asked for because of the server's cap (see ServerSpec.cap). */
  capped: boolean;
  held: number;
  failed: number;
  notTried: number;
  failures: string;
  /** Held connections the server closed while we measured. */
  dropped: number;
  rssBeforeKiB: number;
  rssHeldKiB: number;
  rssPerConnectionKiB: number | null;
  pssPerConnectionKiB: number | null;
  processes: number;
  threads: number;
  openFds: number;
  /** Median time for a new client (connect, GET, whole response) while the others are held. */
  newClientMs: number | null;
  newClientFailures: string;
  /** What the server logged while it held the connections (its own explanation of a limit). */
  serverSaid: string[];
}

/** One level of the crowd scenario: a small keep-alive load beside `held` idle connections. */
export interface CrowdRow {
  server: string;
  /** Idle connections asked for at this level, and held while the load ran. */
  requested: number;
  held: number;
  /** Held connections still open after the measurement (a server that closed some would look cheaper). */
  stillOpen: number;
  /** Busy keep-alive connections beside them. */
  active: number;
  /** N = 0 measured again at the end, once the idle connections were closed (a second baseline). */
  again?: boolean;
  load: LoadResult;
  usage: WindowUsage;
}

/** The slowloris scenario: a normal keep-alive load while `tricklers` connections send their heads one byte a second. */
export interface SlowRow {
  server: string;
  tricklers: number;
  /** The server's request deadline in this scenario, in seconds. */
  requestTimeout: number;
  /** Trickling connections open when the load began (connected; not all were accepted). */
  openAtStart: number;
  /** How the server closed trickling connections during the run ("408": 120), each replaced by a new one. */
  closes: Record<string, number>;
  load: LoadResult;
  /** Requests the load attempted: answered, plus those that failed (timeouts, resets, connect errors). */
  attempted: number;
  /** Answered with a 2xx. */
  answered: number;
  /** A new client every half second beside the load: how long each waited for its whole answer (null: it got none). */
  newcomers: { sentAtMs: number; waitedMs: number | null; outcome: string }[];
}

/** How far the crowd scenario got with one server, and what stopped it there. */
export interface CrowdReach {
  server: string;
  highest: number;
  stoppedBy: string;
}

export interface PairedRow {
  server: string;
  /** Server CPU µs per request in each round (null: it answered nothing that turn). */
  microsPerRequest: (number | null)[];
}

export interface Skip {
  server: string;
  scenario: ScenarioName | 'all';
  reason: string;
}

export interface Results {
  load: LoadRow[];
  idle: IdleRow[];
  /** The servers the CPU targets name, measured in alternation (absent in older results). */
  paired?: PairedRow[];
  /** The crowd scenario (absent in older results). */
  crowd?: CrowdRow[];
  crowdReach?: CrowdReach[];
  /** The slowloris scenario (absent in older results). */
  slowloris?: SlowRow[];
  skips: Skip[];
}

export interface RunContext {
  site: Site;
  settings: Settings;
  /** Waiting for other programs to calm down, and measuring again after they did not. */
  patience: Patience;
  generator: LoadGenerator;
  /** Tells the reader what runs now (called as each step, or a phase of it, begins). */
  progress(step: Step, detail: string): void;
  results: Results;
}

/**
 * A scenario, or a few that share server starts: the names `--scenario` knows it by, the
 * steps it plans for each server (and those it cannot run, with why), and how it runs one
 * server's steps. bench/run.ts lists them.
 */
export interface Scenario {
  names: readonly ScenarioName[];
  plan(server: ServerSpec, names: readonly ScenarioName[], settings: Settings): { steps: Step[]; skips: Skip[] };
  runServer(server: ServerSpec, steps: Step[], context: RunContext): Promise<void>;
}
