/**
 * The RESP front of a member (`--resp-port`): a TCP listener (src/platform/tcp.ts) whose
 * connections speak RESP2/RESP3 (src/core/resp.ts) and run commands (commands.ts) on the
 * member's own Coordinator, as its HTTP API does.
 *
 * Per connection: requests are parsed as bytes arrive and run one after another, so a
 * pipeline's answers come back in order and a command sees the writes of the ones before it.
 * A plain GET or SET is found in the bytes by matchPlain and run without making its words.
 * Answers collect in one buffer and go out when no complete request is left (or past 64 KiB).
 * Bounds: --max-connections per member (past it: `-ERR max number of clients reached`, closed);
 * --resp-buffer-bytes of unanswered input per connection (reading pauses past it while
 * requests are still to run; one request larger than it is a protocol error), and of answers
 * the client has not taken yet (reading pauses until they drain). A protocol error answers
 * `-ERR Protocol error: ...` and closes that connection only.
 */
import type { MemberContext } from "../http/context.ts";
import {
  emptyPlainCommand,
  matchPlain,
  parseRequest,
  PLAIN_GET,
  type PlainCommand,
  type RespLimits,
  RespWriter,
} from "../core/resp.ts";
import { listenTcp, type TcpConn, type TcpServer } from "../platform/tcp.ts";
import {
  allowed,
  type CommandSpec,
  type Env,
  type FrontState,
  keyAt,
  plainGet,
  plainSet,
  RespStats,
  SCAN_CURSORS_MAX,
  ScanCursors,
  type Session,
  upper,
  utf8Into,
  valueAt,
  word,
} from "./commands.ts";
import { commandTable } from "./connection-commands.ts";
import { arity, errorLine } from "./errors.ts";

/** Words in one request, at most (Redis: 1024 * 1024). */
export const ARRAY_LEN_MAX = 1024 * 1024;
/** One inline request line, at most (Redis: 64 KiB). */
export const INLINE_BYTES_MAX = 64 * 1024;
/** Answers buffered before they are sent even though requests are still to run. */
const FLUSH_BYTES = 64 * 1024;
/**
 * Consecutive pipelined reads run at once, at most this many: reads change nothing, so running
 * them together cannot be told from running them one by one (each still starts after every
 * write before it was acknowledged); their answers still go out in order.
 */
const READS_AT_ONCE_MAX = 256;

export interface RespFrontOptions {
  readonly host: string;
  readonly port: number;
  readonly maxConnections: number;
  readonly bufferBytes: number;
}

export class RespFront {
  readonly state: FrontState;
  readonly #table: Record<string, CommandSpec> = commandTable();
  /** The commands that only read keys (GET, MGET, EXISTS, TTL, SCAN, ...). */
  readonly #reads = new Set(Object.values(this.#table).filter((c) => c.flags.includes("readonly")));
  readonly #limits: RespLimits;
  #server: TcpServer | undefined;
  #nextId = 1;

  constructor(private readonly ctx: MemberContext, private readonly opts: RespFrontOptions) {
    this.state = {
      sessions: new Map(),
      scanCursors: new ScanCursors(SCAN_CURSORS_MAX),
      startedAtMs: ctx.sched.now(),
      port: opts.port,
      maxConnections: opts.maxConnections,
      bufferBytes: opts.bufferBytes,
      stats: new RespStats(),
    };
    const c = ctx.config;
    this.#limits = {
      // A key's own limit is checked per command (keys are words like any other).
      bulkBytesMax: Math.max(c.valueBytesMax, c.keyBytesMax, INLINE_BYTES_MAX),
      arrayLenMax: ARRAY_LEN_MAX,
      inlineBytesMax: INLINE_BYTES_MAX,
    };
  }

  /** Listen; throws PortInUseError when the port is taken. */
  start(): void {
    const conns = new Map<TcpConn, Connection>();
    this.#server = listenTcp(this.opts.host, this.opts.port, {
      open: (tcp) => {
        this.state.stats.connectionsTotal++;
        if (this.state.sessions.size >= this.opts.maxConnections) {
          this.state.stats.connectionsRefused++;
          tcp.write(new TextEncoder().encode("-ERR max number of clients reached\r\n"));
          tcp.close();
          return;
        }
        const c = new Connection(this, tcp, this.#nextId++);
        conns.set(tcp, c);
        this.state.sessions.set(c.session.id, c.session);
      },
      data: (tcp, bytes) => conns.get(tcp)?.onData(bytes),
      drained: (tcp) => conns.get(tcp)?.onDrained(),
      close: (tcp) => {
        const c = conns.get(tcp);
        if (c === undefined) return;
        c.closed = true;
        conns.delete(tcp);
        this.state.sessions.delete(c.session.id);
      },
    });
  }

  stop(): void {
    this.#server?.stop();
  }

  get limits(): RespLimits {
    return this.#limits;
  }

  get member(): MemberContext {
    return this.ctx;
  }

  command(name: string): CommandSpec | undefined {
    return this.#table[name];
  }

  isRead(spec: CommandSpec): boolean {
    return this.#reads.has(spec);
  }
}

/** A command's name in upper case (ASCII letters only change; any byte maps to one char). */
function commandName(b: Uint8Array): string {
  if (b.length > 32) return upper(b);
  let s = "";
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    s += String.fromCharCode(c >= 97 && c <= 122 ? c - 32 : c);
  }
  return s;
}

/** Redis's words for a command it does not know. */
function unknownCommand(args: Uint8Array[]): string {
  let rest = "";
  for (let i = 1; i < args.length && rest.length < 128; i++) {
    rest += `'${word(args[i]!).slice(0, 128 - rest.length)}' `;
  }
  return `ERR unknown command '${word(args[0]!).slice(0, 128)}', with args beginning with: ${rest}`;
}

class Connection {
  readonly session: Session;
  readonly #w = new RespWriter(4096, utf8Into);
  #buf: Uint8Array = new Uint8Array(0);
  /** Bytes of #buf in use; #off: where the next request starts. */
  #len = 0;
  #off = 0;
  #running = false;
  #paused = false;
  /**
   * Reads started and not yet answered, in order (see #read), at most READS_AT_ONCE_MAX: the
   * first into the connection's writer (w undefined), the others each into its own.
   */
  #reads: { w: RespWriter | undefined; done: Promise<void> | undefined }[] = [];
  /** The Env of commands answering into the connection's writer (one, reused). */
  readonly #mainEnv: Env;
  /** Where matchPlain found the words of a plain GET or SET (reused). */
  readonly #plain: PlainCommand = emptyPlainCommand();
  /**
   * When the plain command before ended (performance.now()), while the next runs right after it;
   * -1 otherwise. A run of plain commands reads the clock once per command, not twice.
   */
  #plainEndMs = -1;
  closed = false;

  constructor(private readonly front: RespFront, private readonly tcp: TcpConn, id: number) {
    this.session = {
      id,
      addr: tcp.remote,
      createdAtMs: front.member.sched.now(),
      resp3: false,
      role: undefined,
      name: "",
      libName: "",
      libVer: "",
      consistency: "quorum",
      lastCommand: "NULL",
      closeAfterReply: false,
    };
    this.#mainEnv = { ctx: front.member, front: front.state, s: this.session, w: this.#w };
  }

  onData(bytes: Uint8Array): void {
    if (this.closed) return;
    this.#append(bytes);
    if (!this.#running) void this.#pump();
    else this.#checkPause();
  }

  /**
   * Add bytes after the unparsed ones: into the buffer's spare room, else into a new buffer
   * twice the size (amortized linear). Bytes already in a buffer are never moved or
   * overwritten, so the words of a command still running stay valid.
   */
  #append(bytes: Uint8Array): void {
    const rest = this.#len - this.#off;
    if (this.#len + bytes.length <= this.#buf.length) {
      this.#buf.set(bytes, this.#len);
      this.#len += bytes.length;
      return;
    }
    const next = new Uint8Array(Math.max(4096, 2 * (rest + bytes.length)));
    next.set(this.#buf.subarray(this.#off, this.#len));
    next.set(bytes, rest);
    this.#buf = next;
    this.#off = 0;
    this.#len = rest + bytes.length;
  }

  /** The received bytes (a view, remade only when the buffer or its length changed). */
  #viewCache: Uint8Array = new Uint8Array(0);
  #view(): Uint8Array {
    const v = this.#viewCache;
    if (v.buffer !== this.#buf.buffer || v.length !== this.#len) {
      this.#viewCache = this.#buf.subarray(0, this.#len);
    }
    return this.#viewCache;
  }

  onDrained(): void {
    this.#checkPause();
  }

  /** Pause reading while too much input waits or too many answers are unsent. */
  #checkPause(): void {
    const max = this.front.state.bufferBytes;
    const over = this.#len - this.#off > max || this.tcp.unsentBytes > max;
    if (over && !this.#paused) {
      this.#paused = true;
      this.tcp.pause();
    } else if (!over && this.#paused) {
      this.#paused = false;
      this.tcp.resume();
    }
  }

  #flush(): void {
    if (this.#w.length === 0) return;
    // The connection copies what the kernel does not take at once; the writer is reused.
    this.tcp.write(this.#w.view());
    this.#w.reset();
  }

  #fail(message: string): void {
    this.front.state.stats.protocolErrors++;
    this.#w.error(`ERR ${message}`);
    this.#flush();
    this.closed = true;
    this.tcp.close();
  }

  /**
   * Run the complete requests received: at once while each command answers at once, and from
   * the first that waits on the cluster on, as its promises resolve (#resume).
   */
  #pump(): void {
    this.#running = true;
    let wait: Promise<void> | undefined;
    try {
      wait = this.#step();
    } finally {
      if (wait === undefined) this.#idle();
    }
    if (wait !== undefined) void this.#resume(wait);
  }

  async #resume(wait: Promise<void>): Promise<void> {
    try {
      for (let w: Promise<void> | undefined = wait; w !== undefined; w = this.#step()) await w;
    } finally {
      this.#idle();
    }
  }

  /** Every complete request ran: send the answers, start the buffer over when it is empty. */
  #idle(): void {
    this.#running = false;
    if (this.closed) return;
    this.#flush();
    if (this.#off === this.#len) {
      // Everything ran, and no command holds words in the buffer any more: start it over (a
      // large one is let go).
      if (this.#buf.length > 64 * 1024) this.#buf = new Uint8Array(0);
      this.#off = this.#len = 0;
    }
    this.#checkPause();
  }

  /**
   * Parse and run requests until none is complete (undefined) or one must be waited for (the
   * promise of it). Reads that wait on the cluster do not stop the reads after them (#read); any
   * other command first waits for them, so it sees every write before it acknowledged.
   */
  #step(): Promise<void> | undefined {
    const limits = this.front.limits;
    // Plain GETs and SETs go straight to their command (#plainCommand) while nothing else is in
    // flight and no token is needed to run them; everything else through parseRequest.
    const plainOk = this.front.member.tokens === undefined;
    this.#plainEndMs = -1;
    while (!this.closed) {
      if (
        plainOk && this.#reads.length === 0 &&
        matchPlain(this.#view(), this.#off, limits.bulkBytesMax, this.#plain)
      ) {
        this.#off = this.#plain.next;
        const wait = this.#plainCommand(this.#plain);
        if (wait !== undefined) return wait;
        continue;
      }
      this.#plainEndMs = -1;
      const r = parseRequest(this.#view(), this.#off, limits);
      if (r.kind === "incomplete") {
        if (this.#len - this.#off > this.front.state.bufferBytes) {
          // The reads before it answer first (then this is met again).
          if (this.#reads.length > 0) return this.#settleReads();
          this.#fail(
            `Protocol error: request larger than ${this.front.state.bufferBytes} bytes ` +
              `(--resp-buffer-bytes)`,
          );
        }
        break;
      }
      if (r.kind === "error") {
        if (this.#reads.length > 0) return this.#settleReads();
        this.#fail(r.message);
        break;
      }
      this.#off = r.next;
      if (r.kind === "skip") continue;
      const args = r.args;
      const name = commandName(args[0]!);
      const spec = this.front.command(name);
      if (spec !== undefined && this.front.isRead(spec)) {
        this.#read(name, spec, args);
        if (this.#reads.length >= READS_AT_ONCE_MAX) return this.#settleReads();
        continue;
      }
      if (this.#reads.length > 0) {
        return this.#settleReads().then(() =>
          this.closed ? undefined : this.#command(name, spec, args)
        );
      }
      const wait = this.#command(name, spec, args);
      if (wait !== undefined) return wait;
    }
    return this.#reads.length > 0 ? this.#settleReads() : undefined;
  }

  /**
   * A plain GET or SET (what matchPlain found), its answer into the connection's writer: as #run
   * runs the GET or SET command (the same checks, answers and stats), without making its words.
   * A GET that waits on the cluster is a read in flight (#read); a SET that does is waited for.
   */
  #plainCommand(p: PlainCommand): Promise<void> | undefined {
    const env = this.#mainEnv;
    const buf = this.#buf;
    const get = p.op === PLAIN_GET;
    const name = get ? "GET" : "SET";
    this.session.lastCommand = name;
    const started = this.#plainEndMs >= 0 ? this.#plainEndMs : performance.now();
    this.#plainEndMs = -1;
    let out: void | Promise<void>;
    try {
      if (get) out = plainGet(env, keyAt(env, buf, p.keyAt, p.keyBytes, false));
      else {
        const key = keyAt(env, buf, p.keyAt, p.keyBytes, true);
        out = plainSet(env, key, valueAt(env, key, buf, p.valueAt, p.valueBytes));
      }
    } catch (e) {
      this.#failed(env, name, started, e);
      return undefined;
    }
    const stats = this.front.state.stats;
    if (out === undefined) {
      const end = performance.now();
      stats.record(name, (end - started) * 1000, false);
      // A send between two commands is neither's time.
      if (this.#w.length > FLUSH_BYTES) this.#flush();
      else this.#plainEndMs = end;
      return undefined;
    }
    const done = out.then(
      () => stats.record(name, (performance.now() - started) * 1000, false),
      (e) => this.#failed(env, name, started, e),
    );
    if (get) {
      this.#reads.push({ w: undefined, done });
      return undefined;
    }
    return done.then(() => this.#answered());
  }

  /** A command other than a read, its answer into the connection's writer. */
  #command(
    name: string,
    spec: CommandSpec | undefined,
    args: Uint8Array[],
  ): Promise<void> | undefined {
    const wait = this.#run(name, spec, args, this.#env(this.#w));
    if (wait !== undefined) return wait.then(() => this.#answered());
    this.#answered();
    return undefined;
  }

  /** After a command's answer: close after QUIT's, send once past FLUSH_BYTES. */
  #answered(): void {
    if (this.session.closeAfterReply) {
      this.#flush();
      this.closed = true;
      this.tcp.close();
    } else if (this.#w.length > FLUSH_BYTES) this.#flush();
  }

  /**
   * A read (GET, MGET, EXISTS, TTL, SCAN, ...). Reads change nothing, so consecutive ones run at
   * once (at most READS_AT_ONCE_MAX) and cannot be told from running them one by one; each still
   * starts after every write before it was acknowledged. A read answers into the connection's
   * writer, also when it waits: nothing else is written there until it and the reads after it are
   * settled, and those answer into writers of their own, appended in order (#settleReads).
   */
  #read(name: string, spec: CommandSpec, args: Uint8Array[]): void {
    if (this.#reads.length > 0) {
      const own = this.#ownWriter();
      this.#reads.push({ w: own, done: this.#run(name, spec, args, this.#env(own)) });
      return;
    }
    const done = this.#run(name, spec, args, this.#env(this.#w));
    if (done !== undefined) this.#reads.push({ w: undefined, done });
    else if (this.#w.length > FLUSH_BYTES) this.#flush();
  }

  #ownWriter(): RespWriter {
    const w = new RespWriter(256, utf8Into);
    w.resp3 = this.session.resp3;
    return w;
  }

  /** Wait for the reads running, then put their answers in order into the connection's writer. */
  async #settleReads(): Promise<void> {
    const reads = this.#reads;
    this.#reads = [];
    if (reads.length === 1) await reads[0]!.done;
    else await Promise.all(reads.map((r) => r.done));
    for (const r of reads) if (r.w !== undefined) this.#w.append(r.w.view());
    if (this.#w.length > FLUSH_BYTES) this.#flush();
  }

  #env(w: RespWriter): Env {
    if (w === this.#w) return this.#mainEnv;
    return { ctx: this.front.member, front: this.front.state, s: this.session, w };
  }

  /**
   * Run one command, its answer into `env.w`: undefined when it answered at once, else the
   * promise of its answer (it waits on the cluster). Per-command stats either way.
   */
  #run(
    name: string,
    spec: CommandSpec | undefined,
    args: Uint8Array[],
    env: Env,
  ): Promise<void> | undefined {
    const front = this.front;
    if (spec === undefined) {
      env.w.error(unknownCommand(args));
      front.state.stats.record("unknown", 0, true);
      return undefined;
    }
    const s = this.session;
    s.lastCommand = name;
    const tokensOn = front.member.tokens !== undefined;
    if (tokensOn && s.role === undefined && spec.access !== "none") {
      env.w.error("NOAUTH Authentication required.");
      return undefined;
    }
    if (!allowed(s, spec.access, tokensOn)) {
      env.w.error(
        `NOPERM User default has no permissions to run the '${name.toLowerCase()}' command ` +
          `(its token's role is ${s.role}; the command needs ${spec.access})`,
      );
      return undefined;
    }
    if (spec.arity > 0 ? args.length !== spec.arity : args.length < -spec.arity) {
      env.w.error(arity(name).message);
      return undefined;
    }
    const started = performance.now();
    try {
      const out = spec.run(env, args);
      if (out === undefined) {
        front.state.stats.record(name, (performance.now() - started) * 1000, false);
        return undefined;
      }
      return out.then(
        () => front.state.stats.record(name, (performance.now() - started) * 1000, false),
        (e) => this.#failed(env, name, started, e),
      );
    } catch (e) {
      this.#failed(env, name, started, e);
      return undefined;
    }
  }

  /** A command threw: its error answer (Redis's words, or an internal error logged). */
  #failed(env: Env, name: string, started: number, e: unknown): void {
    const line = errorLine(e);
    if (line === undefined) {
      this.front.member.log.error(`RESP ${name}: ${(e as Error).stack ?? e}`);
      env.w.error("ERR internal error");
    } else env.w.error(line);
    this.front.state.stats.record(name, (performance.now() - started) * 1000, true);
  }
}
