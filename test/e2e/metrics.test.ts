/**
 * GET /metrics of real ./dkv processes (orchestrator + 3 nodes), read with a real Prometheus
 * text-format parser (parse-prometheus-text-format): the counters move when traffic flows, the
 * names follow the conventions, and with client tokens on it needs a read token.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import {
  type Cluster,
  http,
  launch,
  startCluster,
  startNode,
  stopAll,
} from "../support/cluster.ts";

interface Sample {
  value?: string;
  labels?: Record<string, string>;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}
interface Family {
  name: string;
  help: string;
  type: string;
  metrics: Sample[];
}

type Families = Family[] & { text: string };

async function scrape(address: string, headers?: Record<string, string>): Promise<Families> {
  const res = await fetch(`http://${address}/metrics`, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  const text = await res.text();
  return Object.assign(parsePrometheusTextFormat(text) as Family[], { text });
}

/**
 * One labeled histogram series: count, sum and the +Inf bucket. The parser merges the series of
 * a labeled histogram into one and drops their labels (it flattens every `le` sample of the
 * family together), so these three lines are read from the exposition text itself; the family's
 * name, type and syntax are still checked by the parser.
 */
function histogram(
  fams: Families,
  name: string,
  labels: Record<string, string>,
): { count: number; sum: number; inf: number } {
  expect(family(fams, name).type).toBe("HISTOGRAM");
  const read = (suffix: string, extra: Record<string, string> = {}): number => {
    const want = { ...extra, ...labels };
    for (const line of fams.text.split("\n")) {
      const m = /^([a-z_]+)\{(.*)\} (\S+)$/.exec(line);
      if (m === null || m[1] !== name + suffix) continue;
      const got = Object.fromEntries(
        [...m[2]!.matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]),
      );
      if (Object.entries(want).every(([k, v]) => got[k] === v)) return Number(m[3]);
    }
    return 0;
  };
  return { count: read("_count"), sum: read("_sum"), inf: read("_bucket", { le: "+Inf" }) };
}

function family(families: Family[], name: string): Family {
  const f = families.find((x) => x.name === name);
  if (f === undefined) throw new Error(`no metric family ${name}`);
  return f;
}

/** The value of the sample of `name` whose labels include `labels` (0 when there is none). */
function value(families: Family[], name: string, labels: Record<string, string> = {}): number {
  const f = family(families, name);
  const hit = f.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return hit === undefined ? 0 : Number(hit.value ?? hit.count);
}

/** Sum over every sample of `name` whose labels include `labels`. */
function total(families: Family[], name: string, labels: Record<string, string> = {}): number {
  return family(families, name).metrics
    .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    .reduce((n, m) => n + Number(m.value ?? m.count), 0);
}

let cluster: Cluster;
const dir = mkdtempSync(join(tmpdir(), "dkv-metrics-"));

beforeAll(async () => {
  cluster = await startCluster(3);
});

afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

describe("GET /metrics", () => {
  test("parses as Prometheus text; every family is dkv_, process_ or nodejs_ and typed", async () => {
    const fams = await scrape(cluster.nodes[0]!.address);
    expect(fams.length).toBeGreaterThan(20);
    for (const f of fams) {
      expect(f.name).toMatch(/^(dkv|process|nodejs)_[a-z0-9_]+$/);
      expect(["COUNTER", "GAUGE", "HISTOGRAM", "SUMMARY"]).toContain(f.type);
      if (f.type === "COUNTER") expect(f.name).toMatch(/_total$/);
      expect(f.help.length).toBeGreaterThan(0);
    }
    // The process figures the issue names.
    expect(value(fams, "process_resident_memory_bytes")).toBeGreaterThan(1_000_000);
    expect(value(fams, "nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
    family(fams, "dkv_event_loop_lag_seconds");
    // Members by state: the orchestrator and three nodes, all UP.
    expect(value(fams, "dkv_members", { state: "UP" })).toBe(4);
    expect(value(fams, "dkv_members", { state: "DOWN" })).toBe(0);
    expect(value(fams, "dkv_ring_members")).toBe(3);
  });

  test("request, latency, peer-call and key counters move when traffic flows", async () => {
    const node = cluster.nodes[0]!;
    const before = await scrape(node.address);
    const putsBefore = value(before, "dkv_http_requests_total", {
      route: "/kv/{key}",
      method: "PUT",
      status: "200",
    });
    const readsBefore = histogram(before, "dkv_client_request_duration_seconds", {
      op: "read",
      consistency: "all",
    }).count;
    const peersBefore = total(before, "dkv_peer_requests_total", { outcome: "ok" });
    const keysBefore = value(before, "dkv_keys");

    const n = 20;
    for (let i = 0; i < n; i++) {
      const put = await http("PUT", node.address, `/kv/metrics-${i}`, `v${i}`);
      expect(put.status).toBe(200);
    }
    for (let i = 0; i < n; i++) {
      const get = await http("GET", node.address, `/kv/metrics-${i}?consistency=all`);
      expect(get.status).toBe(200);
    }
    const missing = await http("GET", node.address, "/kv/metrics-never-written");
    expect(missing.status).toBe(404);

    const after = await scrape(node.address);
    expect(
      value(after, "dkv_http_requests_total", { route: "/kv/{key}", method: "PUT", status: "200" }),
    ).toBe(putsBefore + n);
    expect(
      value(after, "dkv_http_requests_total", { route: "/kv/{key}", method: "GET", status: "404" }),
    ).toBeGreaterThanOrEqual(1);
    // Each read at consistency=all is one observation of the read histogram at that level.
    const reads = histogram(after, "dkv_client_request_duration_seconds", {
      op: "read",
      consistency: "all",
    });
    expect(reads.count).toBe(readsBefore + n);
    expect(reads.sum).toBeGreaterThan(0);
    expect(reads.inf).toBe(reads.count);
    // Writes and reads at quorum/all reach the other replicas: peer calls to both other nodes.
    expect(total(after, "dkv_peer_requests_total", { outcome: "ok" })).toBeGreaterThanOrEqual(
      peersBefore + 2 * n,
    );
    for (const other of cluster.nodes.slice(1)) {
      expect(total(after, "dkv_peer_requests_total", { peer: other.address })).toBeGreaterThan(0);
      expect(histogram(after, "dkv_peer_request_duration_seconds", { peer: other.address }).count)
        .toBeGreaterThan(0);
    }
    // N=3 over 3 nodes: every node holds every key.
    expect(value(after, "dkv_keys")).toBe(keysBefore + n);
    expect(value(after, "dkv_store_bytes")).toBeGreaterThan(0);
    // The scrape itself is counted by the next scrape.
    const again = await scrape(node.address);
    expect(value(again, "dkv_http_requests_total", { route: "/metrics", method: "GET" }))
      .toBeGreaterThanOrEqual(2);
  });

  test("deletes count tombstones; the orchestrator has metrics too, without node figures", async () => {
    const node = cluster.nodes[1]!;
    expect((await http("PUT", node.address, "/kv/metrics-del", "x")).status).toBe(200);
    expect((await http("DELETE", node.address, "/kv/metrics-del")).status).toBe(200);
    const fams = await scrape(node.address);
    expect(value(fams, "dkv_tombstones")).toBeGreaterThanOrEqual(1);
    expect(
      histogram(fams, "dkv_client_request_duration_seconds", {
        op: "delete",
        consistency: "quorum",
      })
        .count,
    ).toBeGreaterThan(0);

    const orch = await scrape(cluster.orchestrator.address);
    expect(value(orch, "dkv_members", { state: "UP" })).toBe(4);
    // No store on the orchestrator: it holds no keys; it still counts what it answered.
    expect(value(orch, "dkv_keys")).toBe(0);
    expect(value(orch, "dkv_http_requests_total", { route: "/all-nodes", method: "GET" }))
      .toBeGreaterThanOrEqual(1);
  });

  test("with client tokens, /metrics needs a read token", async () => {
    const tokens = join(dir, "tokens");
    writeFileSync(tokens, "reader-token-0123456789 read\n", { mode: 0o600 });
    const solo = await launch((p) =>
      startNode(p, 0, ["--join", "127.0.0.1:1", "--auth-token-file", tokens])
    );
    const open = await fetch(`http://${solo.address}/metrics`);
    expect(open.status).toBe(401);
    await open.text();
    const fams = await scrape(solo.address, { authorization: "Bearer reader-token-0123456789" });
    expect(value(fams, "dkv_http_requests_total", { route: "/metrics", status: "401" })).toBe(1);
  });
});
