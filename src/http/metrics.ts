/**
 * `GET /metrics`: this member's figures in the Prometheus text format, through prom-client (it
 * runs unchanged in the compiled binary and under Deno; checked before it was chosen).
 *
 * Two kinds of figures:
 * - Counted on the request path, as cheaply as we can: requests by route, method and status, and
 *   the latency of client reads and writes by consistency (`meter`, around the front door); peer
 *   calls by peer and outcome, and their latency (`meterPeers`, around the peer transport's fetch).
 *   These are plain numbers written by prom-text.ts, not prom-client objects: a series is found
 *   by a map lookup, then a request costs an increment and a bucket search.
 * - Read when scraped, from figures the member keeps anyway (its /cluster/status row, the view,
 *   the process): hints, read repairs, anti-entropy, rebalance, members by state, keys, bytes.
 *   Nothing is added to the hot code for those.
 *
 * Every label has a bounded set of values: routes are a fixed list (anything else is "other"),
 * methods too, peers are members (bounded by --max-members).
 */
import { Counter, Gauge, Registry } from "prom-client";
import {
  type CounterSeries,
  type HistogramSeries,
  LabeledCounter,
  LabeledHistogram,
} from "./prom-text.ts";
import type { Scheduler, Timer } from "../core/scheduler.ts";
import type { FetchFn } from "../transport/peer-client.ts";
import type { MemberContext } from "./context.ts";
import type { KvObserver } from "./kv-handler.ts";

/** Latency buckets in seconds: a local read is well under a millisecond, a timeout is seconds. */
const BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Route labels: the routes that exist; anything else is "other". */
const ROUTES = new Set([
  "/",
  "/health",
  "/all-nodes",
  "/metrics",
  "/ui",
  "/kv/all-data",
  "/cluster/status",
  "/cluster/ring",
  "/admin/leave",
  "/internal/v1/kv/write",
  "/internal/v1/kv/read",
  "/internal/v1/hints",
  "/internal/v1/ae/digests",
  "/internal/v1/ae/buckets",
  "/internal/v1/ae/versions",
  "/internal/v1/rebalance/records",
  "/internal/v1/rebalance/done",
  "/internal/v1/status",
  "/internal/v1/gossip",
]);
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
const CONSISTENCIES = new Set(["one", "quorum", "all", "any"]);

/** The route label of a raw path (bounded: see ROUTES). */
export function routeLabel(path: string): string {
  if (path.startsWith("/kv/") || path === "/kv") {
    return path === "/kv/all-data" ? path : path === "/kv" ? "/kv" : "/kv/{key}";
  }
  if (path.startsWith("/all-nodes/")) return "/all-nodes/{key}";
  if (path.startsWith("/ui/")) return "/ui";
  return ROUTES.has(path) ? path : "other";
}

/** The path of a URL without parsing it whole (the request path is hot). */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  let end = url.length;
  const q = url.indexOf("?", start);
  if (q >= 0) end = q;
  return url.slice(start, end);
}

/** `?consistency=` of a URL, "quorum" when absent; undefined when not a known level. */
function consistencyOf(url: string): string | undefined {
  const q = url.indexOf("?");
  const at = q < 0 ? -1 : url.indexOf("consistency=", q);
  if (at < 0) return "quorum";
  const end = url.indexOf("&", at);
  const level = url.slice(at + "consistency=".length, end < 0 ? url.length : end);
  return CONSISTENCIES.has(level) ? level : undefined;
}

type Serve = (req: Request) => Response | Promise<Response>;

export class Metrics {
  readonly registry = new Registry();
  readonly #requests = new LabeledCounter(
    "dkv_http_requests_total",
    "HTTP requests answered by this member, by route, method and status",
    ["route", "method", "status"],
  );
  readonly #clientSeconds = new LabeledHistogram(
    "dkv_client_request_duration_seconds",
    "Client reads, writes and deletes of /kv/{key} coordinated here, by consistency",
    ["op", "consistency"],
    BUCKETS_S,
  );
  readonly #peerCalls = new LabeledCounter(
    "dkv_peer_requests_total",
    "Calls to peers, by peer address and outcome (ok, http_4xx, http_5xx, timeout, failed)",
    ["peer", "outcome"],
  );
  readonly #peerSeconds = new LabeledHistogram(
    "dkv_peer_request_duration_seconds",
    "Time to a peer's answer headers, by peer address",
    ["peer"],
    BUCKETS_S,
  );
  readonly #linkRequests = new LabeledCounter(
    "dkv_peer_link_requests_total",
    "Peer calls answered on this member's TCP peer link (--peer-port), by route and status",
    ["route", "status"],
  );
  readonly #linkConnections = new LabeledCounter(
    "dkv_peer_link_connections_total",
    "Connections to this member's TCP peer link, by outcome (accepted, refused_limit, " +
      "refused_hello, idle_closed)",
    ["outcome"],
  );
  readonly #linkSeries = new Map<string, CounterSeries>();
  /** The hot path's series: requests by route, method and status; latencies by op, consistency. */
  readonly #requestSeries = new Map<string, Map<string, Map<number, CounterSeries>>>();
  readonly #clientSeries = new Map<string, Map<string, HistogramSeries>>();
  readonly #peerSeries = new Map<string, CounterSeries>();
  readonly #peerSecondsSeries = new Map<string, HistogramSeries>();
  #ctx: MemberContext | undefined;
  #lagMaxMs = 0;
  #lagTimer: Timer | undefined;
  #lagSched: Scheduler | undefined;

  /** `process`: also the process's own figures (RSS, heap, CPU): one per process, not per member. */
  constructor(opts: { process?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.process) processMetrics(registers);
    const lag = () => this.#lagMaxMs;
    const resetLag = () => {
      this.#lagMaxMs = 0;
    };
    new Gauge({
      name: "dkv_event_loop_lag_seconds",
      help: "Largest event-loop delay seen by a 100 ms timer since the last scrape",
      registers,
      collect() {
        this.set(lag() / 1000);
        resetLag();
      },
    });
    this.#scraped(registers);
  }

  /** Read the member's own figures at scrape time (set once the member's context exists). */
  bind(ctx: MemberContext): void {
    this.#ctx = ctx;
  }

  /** Sample event-loop lag with a 100 ms timer on `sched` (the process shell starts it). */
  startLagSampler(sched: Scheduler): void {
    if (this.#lagTimer !== undefined) return;
    const periodMs = 100;
    let expected = sched.now() + periodMs;
    this.#lagSched = sched;
    this.#lagTimer = sched.setInterval(() => {
      const now = sched.now();
      this.#lagMaxMs = Math.max(this.#lagMaxMs, now - expected);
      expected = now + periodMs;
    }, periodMs);
  }

  stop(): void {
    if (this.#lagTimer !== undefined) this.#lagSched?.clear(this.#lagTimer);
    this.#lagTimer = undefined;
  }

  /** The exposition text: prom-client's families, then the request-path ones. */
  async text(): Promise<string> {
    const registered = await this.registry.metrics();
    return registered + this.#requests.text() + this.#clientSeconds.text() +
      this.#peerCalls.text() + this.#peerSeconds.text() + this.#linkRequests.text() +
      this.#linkConnections.text();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Count and time every request `serve` answers (the routed, rarer ones: key requests report
   * themselves through `observe`, without the extra promise a wrapper costs them).
   */
  meter(serve: Serve, now: () => number = performance.now.bind(performance)): Serve {
    return (req) => {
      const start = now();
      const answer = serve(req);
      if (answer instanceof Promise) {
        return answer.then((res) => {
          this.#record(req, res.status, now() - start);
          return res;
        });
      }
      this.#record(req, answer.status, now() - start);
      return answer;
    };
  }

  /** A request answered (not a key request: those come through observeKey). */
  observe(req: Request, status: number): void {
    this.#record(req, status, undefined);
  }

  /**
   * A key request answered by the key handler, which passes what it knows (route, method,
   * status, the parsed consistency) so nothing is parsed again here.
   */
  readonly observeKey: KvObserver = (route, method, status, consistency, ms) => {
    this.#count(route, method, status);
    if (route !== "/kv/{key}" || consistency === undefined || !CONSISTENCIES.has(consistency)) {
      return;
    }
    if (status === 400 || status === 405 || status === 408 || status === 413) return;
    this.#latency(method, consistency, ms);
  };

  #count(route: string, method: string, status: number): void {
    // Normalized before the lookup: a made-up method must not grow the map. Looked up by route,
    // then method, then status: no key text made per request.
    const m = METHODS.has(method) ? method : "OTHER";
    let byMethod = this.#requestSeries.get(route);
    if (byMethod === undefined) this.#requestSeries.set(route, byMethod = new Map());
    let byStatus = byMethod.get(m);
    if (byStatus === undefined) byMethod.set(m, byStatus = new Map());
    let series = byStatus.get(status);
    if (series === undefined) {
      series = this.#requests.series([route, m, String(status)]);
      byStatus.set(status, series);
    }
    series.value++;
  }

  #record(req: Request, status: number, ms: number | undefined): void {
    const url = req.url;
    const route = routeLabel(pathOf(url));
    const method = req.method;
    this.#count(route, method, status);
    if (ms === undefined || route !== "/kv/{key}") return;
    if (status === 400 || status === 405 || status === 408 || status === 413) return;
    const consistency = consistencyOf(url);
    if (consistency === undefined) return;
    this.#latency(method, consistency, ms);
  }

  #latency(method: string, consistency: string, ms: number): void {
    const op = method === "GET" || method === "HEAD"
      ? "read"
      : method === "DELETE"
      ? "delete"
      : "write";
    let byConsistency = this.#clientSeries.get(op);
    if (byConsistency === undefined) this.#clientSeries.set(op, byConsistency = new Map());
    let h = byConsistency.get(consistency);
    if (h === undefined) {
      h = this.#clientSeconds.series([op, consistency]);
      byConsistency.set(consistency, h);
    }
    this.#clientSeconds.observe(h, ms / 1000);
  }

  /** Count and time every peer call made through `fetchFn`. */
  meterPeers(fetchFn: FetchFn, now: () => number = performance.now.bind(performance)): FetchFn {
    return async (url, init) => {
      const start = now();
      const peer = peerOf(url);
      try {
        const res = await fetchFn(url, init);
        const outcome = res.status < 400 ? "ok" : res.status < 500 ? "http_4xx" : "http_5xx";
        this.#peer(peer, outcome, now() - start);
        return res;
      } catch (e) {
        const name = (e as Error)?.name;
        const timeout = name === "TimeoutError" || name === "AbortError";
        this.#peer(peer, timeout ? "timeout" : "failed", now() - start);
        throw e;
      }
    };
  }

  /** One replica call answered on the TCP peer link (`route`: its HTTP route's label). */
  observeLink(route: string, status: number): void {
    const key = `${route} ${status}`;
    let series = this.#linkSeries.get(key);
    if (series === undefined) {
      series = this.#linkRequests.series([route, String(status)]);
      this.#linkSeries.set(key, series);
    }
    series.value++;
  }

  /** A connection to the TCP peer link: accepted, refused_limit, refused_hello or idle_closed. */
  observeLinkConnection(outcome: string): void {
    this.#linkConnections.series([outcome]).value++;
  }

  /**
   * Count and time one peer call made another way than `meterPeers`' fetch (the TCP peer link):
   * outcome ok, http_4xx, http_5xx (the status of a refusal), timeout or failed.
   */
  observePeer(peer: string, outcome: string, ms: number): void {
    this.#peer(peer, outcome, ms);
  }

  #peer(peer: string, outcome: string, ms: number): void {
    const key = `${peer} ${outcome}`;
    let c = this.#peerSeries.get(key);
    if (c === undefined) {
      c = this.#peerCalls.series([peer, outcome]);
      this.#peerSeries.set(key, c);
    }
    c.value++;
    let h = this.#peerSecondsSeries.get(peer);
    if (h === undefined) {
      h = this.#peerSeconds.series([peer]);
      this.#peerSecondsSeries.set(peer, h);
    }
    this.#peerSeconds.observe(h, ms / 1000);
  }

  /** The figures read at scrape time from the bound member. */
  #scraped(registers: Registry[]): void {
    const ctx = () => this.#ctx;
    const status = () => ctx()?.status?.();
    /** A counter whose value is read when scraped (it only grows: the member keeps the total). */
    const counter = (name: string, help: string, read: () => number | undefined) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          const v = read();
          this.reset();
          if (v !== undefined && v > 0) this.inc(v);
        },
      });
    const gauge = (name: string, help: string, read: () => number | undefined) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const v = read();
          this.reset();
          if (v !== undefined) this.set(v);
        },
      });
    gauge("dkv_keys", "Live keys this node holds as a replica", () => status()?.keys);
    gauge(
      "dkv_tombstones",
      "Tombstones (deleted keys) this node holds",
      () => status()?.tombstones,
    );
    gauge("dkv_store_bytes", "UTF-8 bytes of keys and values stored", () => status()?.storeBytes);
    gauge(
      "dkv_partitions_owned",
      "Partitions this node is a replica of",
      () => status()?.partitionsOwned,
    );
    gauge("dkv_hints_pending", "Hints held here for down replicas", () => status()?.hintsPending);
    counter(
      "dkv_hints_delivered_total",
      "Hints delivered to their replica",
      () => status()?.hintsDelivered,
    );
    counter(
      "dkv_hints_dropped_total",
      "Hints dropped: the hint store was full",
      () => status()?.hintsDropped,
    );
    counter(
      "dkv_hints_expired_total",
      "Hints that expired undelivered",
      () => status()?.hintsExpired,
    );
    counter(
      "dkv_read_repairs_total",
      "Stale replicas repaired by reads coordinated here",
      () => status()?.readRepairs,
    );
    counter(
      "dkv_anti_entropy_rounds_total",
      "Anti-entropy rounds completed",
      () => status()?.antiEntropy.rounds,
    );
    new Counter({
      name: "dkv_anti_entropy_keys_total",
      help: "Keys anti-entropy moved, pulled from or pushed to peers",
      labelNames: ["direction"],
      registers,
      collect() {
        const s = status();
        this.reset();
        if (s === undefined) return;
        this.inc({ direction: "pulled" }, s.antiEntropy.keysPulled);
        this.inc({ direction: "pushed" }, s.antiEntropy.keysPushed);
      },
    });
    gauge("dkv_rebalance_running", "1 while this node streams partitions away", () => {
      const s = status();
      return s === undefined ? undefined : s.rebalance.running ? 1 : 0;
    });
    new Gauge({
      name: "dkv_rebalance_partitions_moving",
      help: "Partitions moving: in (being received here) and out (to stream or drop)",
      labelNames: ["direction"],
      registers,
      collect() {
        const s = status();
        this.reset();
        if (s === undefined) return;
        this.set({ direction: "in" }, s.movingIn);
        this.set({ direction: "out" }, s.movingOut);
      },
    });
    new Gauge({
      name: "dkv_rebalance_remaining",
      help: "Keys and bytes the running rebalance round still has to stream (0 when none runs)",
      labelNames: ["unit"],
      registers,
      collect() {
        this.reset();
        const c = ctx();
        if (c?.rebalanceProgress === undefined) return;
        const p = c.rebalanceProgress();
        const left = (total: number | undefined, done: number) =>
          total === undefined ? 0 : Math.max(0, total - done);
        this.set({ unit: "keys" }, p === undefined ? 0 : left(p.keysTotal, p.keysDone));
        this.set({ unit: "bytes" }, p === undefined ? 0 : left(p.bytesTotal, p.bytesDone));
      },
    });
    counter(
      "dkv_rebalance_partitions_moved_total",
      "Partitions streamed to new owners",
      () => status()?.rebalance.partitionsSent,
    );
    counter(
      "dkv_rebalance_keys_moved_total",
      "Keys streamed to new owners (once per target)",
      () => status()?.rebalance.keysSent,
    );
    counter(
      "dkv_rebalance_bytes_moved_total",
      "Bytes streamed to new owners",
      () => status()?.rebalance.bytesSent,
    );
    counter(
      "dkv_rebalance_partitions_dropped_total",
      "Partitions dropped after hand-off",
      () => status()?.rebalance.partitionsDropped,
    );
    counter(
      "dkv_tombstones_collected_total",
      "Tombstones removed after the grace period",
      () => status()?.tombstonesCollected,
    );
    counter(
      "dkv_stale_ring_retries_total",
      "Requests retried on a newer ring",
      () => status()?.staleRingRetries,
    );
    counter(
      "dkv_clock_skew_refused_total",
      "Remote versions refused as too far ahead",
      () => status()?.clockSkewRefused,
    );
    counter(
      "dkv_cluster_auth_refused_total",
      "Internal calls refused for a bad signature",
      () => ctx()?.auth?.refused,
    );
    new Gauge({
      name: "dkv_members",
      help: "Members in this member's view, by state",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        const view = ctx()?.view();
        const counts: Record<string, number> = { UP: 0, SUSPECT: 0, DOWN: 0, LEFT: 0 };
        for (const m of view?.members ?? []) counts[m.state] = (counts[m.state] ?? 0) + 1;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    gauge("dkv_ring_members", "Members in the ring (holding partitions)", () => {
      const view = ctx()?.view();
      return view === undefined ? undefined : view.members.filter((m) => m.inRing).length;
    });
    gauge("dkv_view_epoch", "Epoch of this member's membership view", () => ctx()?.view()?.epoch);
  }
}

/** host:port of a peer URL (`http://host:port/...`). */
function peerOf(url: string): string {
  const start = url.indexOf("//") + 2;
  const end = url.indexOf("/", start);
  return url.slice(start, end < 0 ? url.length : end);
}

/**
 * The process's own figures, read when scraped (names as prom-client's defaults use them). Not
 * prom-client's collectDefaultMetrics: that one also watches every garbage collection and samples
 * event-loop delay all the time (a cost on every request that allocates), and under Deno, without
 * -A, it reads RSS as 0; process.memoryUsage() and cpuUsage() work on both runtimes.
 */
function processMetrics(registers: Registry[]): void {
  const startS = Math.round(Date.now() / 1000 - process.uptime());
  new Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes",
    registers,
    collect() {
      this.set(process.memoryUsage().rss);
    },
  });
  new Gauge({
    name: "nodejs_heap_size_used_bytes",
    help: "JavaScript heap in use, in bytes",
    registers,
    collect() {
      this.set(process.memoryUsage().heapUsed);
    },
  });
  new Gauge({
    name: "nodejs_heap_size_total_bytes",
    help: "JavaScript heap reserved, in bytes",
    registers,
    collect() {
      this.set(process.memoryUsage().heapTotal);
    },
  });
  new Counter({
    name: "process_cpu_seconds_total",
    help: "User and system CPU time spent, in seconds",
    registers,
    collect() {
      const u = process.cpuUsage();
      this.reset();
      this.inc((u.user + u.system) / 1e6);
    },
  });
  new Gauge({
    name: "process_start_time_seconds",
    help: "Start time of the process since the Unix epoch, in seconds",
    registers,
    collect() {
      this.set(startS);
    },
  });
}
