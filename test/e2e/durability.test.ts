/**
 * --data-dir with real processes (issue 10): every member of a 3-node cluster (N=3) killed -9
 * under write load and started again loses no acknowledged write (the history checker, exact
 * placement), with --fsync always and batch; a torn log is cut and a damaged one refused (then
 * recovered by --repair-wal); a data dir is refused while another live process holds it, or
 * when it belongs to another node or cluster; and a full disk answers 507 while reads go on.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  allUp,
  freePorts,
  http,
  launch,
  nodeCmd,
  orchestratorCmd,
  type Proc,
  ready,
  runCaptured,
  servesQuorum,
  spawnLogged,
  startAt,
  stopAll,
  waitFor,
} from "../support/cluster.ts";
import { History, startWriters, verify, writeKeys } from "../support/history.ts";
import { rng } from "../unit/seeded.ts";
import { scanFile } from "../../src/core/wal-format.ts";

const base = mkdtempSync(join(tmpdir(), "dkv-durability-"));
afterEach(async () => {
  await stopAll();
});
afterAll(async () => {
  await stopAll();
  rmSync(base, { recursive: true, force: true });
});

/** A fresh data dir for one member. */
function dataDir(name: string): string {
  const d = join(base, `${name}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(d, { recursive: true });
  return join(d, "data");
}

const addrs = (ps: readonly Proc[]) => ps.map((p) => p.address);

/** Orchestrator + 3 nodes, each node with its own --data-dir, all UP and serving quorum. */
async function durableCluster(fsync: string): Promise<{ orch: Proc; nodes: Proc[] }> {
  const [orchPort, ...ports] = freePorts(4);
  const orch = spawnLogged(`dur-orch-${orchPort}`, orchestratorCmd(orchPort!), orchPort!);
  const nodes = ports.map((p) =>
    spawnLogged(
      `dur-${fsync}-${p}`,
      nodeCmd(p, orchPort!, [
        "--dead-after",
        "60s",
        "--data-dir",
        dataDir(`n${p}`),
        "--fsync",
        fsync,
      ]),
      p,
    )
  );
  for (const m of [orch, ...nodes]) await ready(m);
  await settle(orch, nodes);
  return { orch, nodes };
}

async function settle(orch: Proc, nodes: readonly Proc[]): Promise<void> {
  for (const m of [orch, ...nodes]) {
    await waitFor(`${m.name} to list 3 nodes UP`, () => allUp(m.address, addrs(nodes)), 30_000);
  }
  for (const m of [orch, ...nodes]) await servesQuorum(m);
}

describe("a full-cluster kill -9 under write load loses nothing acknowledged", () => {
  for (const fsync of ["always", "batch"]) {
    test(`--fsync ${fsync}`, async () => {
      let { orch, nodes } = await durableCluster(fsync);
      const h = new History();
      const cold = Array.from({ length: 200 }, (_, i) => `cold-${fsync}-${i}`);
      await writeKeys(h, cold, addrs(nodes));
      const w = startWriters(h, {
        targets: () => addrs(nodes),
        writers: 8,
        keysPerWriter: 30,
        prefix: `dur-${fsync}`,
      });
      await waitFor("writes under way", () => h.okWrites > cold.length + 400);
      // Every member at once, mid-write: nothing survives in any process's memory.
      for (const m of [orch, ...nodes]) m.kill(9);
      await Promise.all([orch, ...nodes].map((m) => m.exited));
      const acked = h.okWrites;
      orch = await startAt(`${orch.name}-again`, orch.cmd, orch.port, orch.env);
      nodes = await Promise.all(nodes.map((n) => startAt(`${n.name}-again`, n.cmd, n.port, n.env)));
      for (const n of nodes) expect(n.log()).toContain("--data-dir: recovered");
      await settle(orch, nodes);
      await waitFor("writes after the restart", () => h.okWrites > acked + 200);
      await w.stop();
      // A member that saw its peers' restarts as a partition refuses quorum for a moment.
      for (const m of [orch, ...nodes]) await servesQuorum(m);
      expect((await verify(h, () => addrs(nodes), () => [orch.address])).slice(0, 10)).toEqual([]);
      expect(acked).toBeGreaterThan(600);
      const st = await Promise.all(addrs(nodes).map((a) => http("GET", a, "/internal/v1/status")));
      for (const s of st) expect(s.body.disk).toMatchObject({ fsync, writable: true, errors: 0 });
      // Each waited, after its restart, for every member of its old ring before answering for
      // keys (--dead-after is 60 s: the gate did not open on time).
      for (const n of nodes) expect(n.log()).toMatch(/restarted from --data-dir: 3 of the 3 /);
    }, 150_000);
  }
});

/** One node that is its own cluster (N=1), with a data dir; returns it and its data dir. */
async function soloNode(dir: string, extra: string[] = []): Promise<Proc> {
  return await launch((port) =>
    spawnLogged(
      `solo-${port}`,
      nodeCmd(port, 0, [
        `--join=127.0.0.1:${port}`,
        "--node-id",
        "solo",
        "--data-dir",
        dir,
        ...extra,
      ]),
      port,
    )
  );
}

async function putAll(p: Proc, n: number, prefix: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await http("PUT", p.address, `/kv/${prefix}${i}`, `value-${i}-${"x".repeat(i % 50)}`);
    expect(r.status).toBe(200);
  }
}

async function present(p: Proc, n: number, prefix: string): Promise<number> {
  let found = 0;
  for (let i = 0; i < n; i++) {
    const r = await http("GET", p.address, `/kv/${prefix}${i}`);
    if (r.status === 200) {
      expect(r.body.value).toBe(`value-${i}-${"x".repeat(i % 50)}`);
      found++;
    } else expect(r.status).toBe(404);
  }
  return found;
}

/** Keys of the record entries a log's valid prefix holds (the format's own reader). */
function keysIn(log: Uint8Array): string[] {
  return scanFile(log, "log").entries.flatMap((e) => (e.type === "record" ? [e.record.key] : []));
}

const logFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith(".wal")).sort();

describe("torn and damaged logs, through the binary", () => {
  test(
    "a log cut at seeded random offsets: the node starts and keeps exactly the entries before the cut",
    async () => {
      const dir = dataDir("torn");
      let p = await soloNode(dir);
      await putAll(p, 60, "t");
      p.kill(9);
      await p.exited;
      const [log] = logFiles(dir);
      const whole = readFileSync(join(dir, log!));
      const seed = Number(process.env.FC_SEED ?? Date.now() % 1_000_000);
      const r = rng(seed);
      // Three cuts through the real binary (the 200-offset sweep is in test/unit/wal.test.ts).
      for (let i = 0; i < 3; i++) {
        const cut = 400 + r.int(whole.length - 400);
        writeFileSync(join(dir, log!), whole.subarray(0, cut));
        p = await startAt(`${p.name}-cut${i}`, p.cmd, p.port, p.env);
        const kept = keysIn(whole.subarray(0, cut));
        const found = await present(p, 60, "t");
        // The keys were written one after another: exactly those wholly before the cut are back.
        expect(found, `seed ${seed} cut ${cut}`).toBe(kept.length);
        for (const k of kept) expect((await http("GET", p.address, `/kv/${k}`)).status).toBe(200);
        expect(p.log()).toMatch(/cut a torn tail of \d+ bytes|recovered/);
        p.kill(9);
        await p.exited;
        // Start the next round from the original bytes again, in a fresh log layout.
        for (const f of logFiles(dir)) rmSync(join(dir, f));
        writeFileSync(join(dir, log!), whole);
      }
    },
    90_000,
  );

  test(
    "a byte flipped mid-log: one clear line and exit 1; --repair-wal starts from the valid prefix",
    async () => {
      const dir = dataDir("flip");
      const p = await soloNode(dir);
      await putAll(p, 80, "f");
      p.kill(9);
      await p.exited;
      const [log] = logFiles(dir);
      const path = join(dir, log!);
      const bytes = readFileSync(path);
      // The middle of what the log holds; the zeros written ahead of it are not the log.
      let end = bytes.length;
      while (end > 0 && bytes[end - 1] === 0) end--;
      const at = Math.floor(end / 2);
      bytes[at] = bytes[at]! ^ 0x40;
      writeFileSync(path, bytes);
      const refused = await runCaptured(p.cmd);
      expect(refused.code).toBe(1);
      const lines = refused.stderr.trim().split("\n");
      expect(lines.length).toBe(1);
      expect(lines[0]).toMatch(
        new RegExp(`^dkv: --data-dir .*: ${log} at byte \\d+ of ${bytes.length}: .*--repair-wal`),
      );
      // Nothing was changed by the refusal.
      expect(readFileSync(path).equals(bytes)).toBe(true);
      const repaired = await startAt(
        `${p.name}-repaired`,
        [...p.cmd, "--repair-wal"],
        p.port,
        p.env,
      );
      expect(repaired.log()).toMatch(/--repair-wal: dropped \d+ bytes from .* at byte \d+/);
      const found = await present(repaired, 80, "f");
      const kept = keysIn(bytes);
      expect(found).toBe(kept.length);
      expect(found).toBeGreaterThan(10);
      expect(found).toBeLessThan(80);
      for (const k of kept) {
        expect((await http("GET", repaired.address, `/kv/${k}`)).status).toBe(200);
      }
      // Repaired for good: a plain restart now starts without the flag.
      repaired.kill(9);
      await repaired.exited;
      const again = await startAt(`${p.name}-after-repair`, p.cmd, p.port, p.env);
      expect(await present(again, 80, "f")).toBe(found);
    },
    90_000,
  );
});

describe("who owns a data dir", () => {
  test(
    "a second live process is refused; a dead one's lock is taken over; another node id or cluster is refused",
    async () => {
      const dir = dataDir("lock");
      const p = await soloNode(dir);
      await putAll(p, 5, "l");
      const [port2] = freePorts(1);
      const second = await runCaptured(
        nodeCmd(port2!, 0, [`--join=127.0.0.1:${port2}`, "--node-id", "solo", "--data-dir", dir]),
      );
      expect(second.code).toBe(1);
      expect(second.stderr.trim()).toBe(
        `dkv: --data-dir ${dir}: in use by process ${p.proc.pid} (its LOCK file); stop that process first`,
      );
      p.kill(9);
      await p.exited;
      const other = await runCaptured(
        nodeCmd(port2!, 0, [`--join=127.0.0.1:${port2}`, "--node-id", "other", "--data-dir", dir]),
      );
      expect(other.code).toBe(1);
      expect(other.stderr.trim()).toBe(
        `dkv: --data-dir ${dir}: belongs to node 'solo', not 'other' (--node-id, or the address)`,
      );
      const cluster = await runCaptured(
        nodeCmd(port2!, 0, [
          `--join=127.0.0.1:${port2}`,
          "--node-id",
          "solo",
          "--cluster-name",
          "blue",
          "--data-dir",
          dir,
        ]),
      );
      expect(cluster.code).toBe(1);
      expect(cluster.stderr.trim()).toBe(
        `dkv: --data-dir ${dir}: belongs to cluster 'dkv', not 'blue' (--cluster-name)`,
      );
      // The killed process's LOCK is stale: the same node starts and has its data.
      const back = await startAt(`${p.name}-back`, p.cmd, p.port, p.env);
      expect(await present(back, 5, "l")).toBe(5);
    },
    60_000,
  );
});

describe("values SET over RESP", () => {
  test(
    "stored from their bytes (the plain SET path): text through HTTP, in the log, after a kill -9",
    async () => {
      const dir = dataDir("resp");
      const [resp] = freePorts(1);
      const p = await soloNode(dir, ["--resp-port", String(resp)]);
      const values: Record<string, string> = {
        a: "x".repeat(100),
        b: "",
        c: "ünïcödé ✓",
        d: "v".repeat(5000),
      };
      // One pipeline of plain SETs in the multibulk form clients send.
      const enc = new TextEncoder();
      const frames = Object.entries(values).map(([k, v]) => {
        const b = enc.encode(v);
        return `*3\r\n$3\r\nSET\r\n$${k.length + 2}\r\nr:${k}\r\n$${b.length}\r\n${v}\r\n`;
      });
      const replies = await new Promise<string>((resolve, reject) => {
        let got = "";
        const sock = connect(resp!, "127.0.0.1", () => sock.write(frames.join("")));
        sock.on("data", (d) => {
          got += d.toString("latin1");
          if (got.split("\r\n").length > frames.length) {
            sock.end();
            resolve(got);
          }
        });
        sock.on("error", reject);
      });
      expect(replies).toBe("+OK\r\n".repeat(frames.length));
      const check = async (q: Proc) => {
        for (const [k, v] of Object.entries(values)) {
          const r = await http("GET", q.address, `/kv/r:${k}`);
          expect(r.status).toBe(200);
          expect(r.body.value).toBe(v);
          expect(r.body.encoding).toBeUndefined();
        }
      };
      await check(p);
      p.kill(9);
      await p.exited;
      const back = await startAt(`${p.name}-back`, p.cmd, p.port, p.env);
      await check(back);
    },
    60_000,
  );
});

describe("snapshots and compaction under writes", () => {
  test(
    "the log is compacted into snapshots, disk use stays near the live data, and a restart has everything",
    async () => {
      const dir = dataDir("snap");
      const p = await soloNode(dir, ["--snapshot-log-bytes", "65536"]);
      // 200 keys overwritten 15 times each, 8 writers at once.
      const latest = new Map<string, string>();
      await Promise.all(Array.from({ length: 8 }, async (_, w) => {
        for (let round = 0; round < 15; round++) {
          for (let k = w; k < 200; k += 8) {
            const value = `r${round}-${"v".repeat(100)}`;
            const r = await http("PUT", p.address, `/kv/s${k}`, value);
            expect(r.status).toBe(200);
            latest.set(`s${k}`, value);
          }
        }
      }));
      const st = (await http("GET", p.address, "/internal/v1/status")).body.disk;
      expect(st.snapshots).toBeGreaterThan(2);
      const files = readdirSync(dir);
      const bytes = files.reduce((n, f) => n + statSync(join(dir, f)).size, 0);
      const live = 200 * (5 + 104);
      // Written in all: 3000 × ~150 B = 450 KB; on disk: a snapshot and a log of at most 64 KiB.
      expect(bytes).toBeLessThan(live * 2 + 65536 * 2);
      expect(files.filter((f) => f.endsWith(".snap")).length).toBe(1);
      p.kill(9);
      await p.exited;
      const back = await startAt(`${p.name}-back`, p.cmd, p.port, p.env);
      expect(back.log()).toMatch(/recovered 200 keys, 0 hints from \d+ entries .*\(snapshot \d+;/);
      for (const [k, v] of latest) {
        expect((await http("GET", back.address, `/kv/${k}`)).body.value).toBe(v);
      }
    },
    90_000,
  );
});

/**
 * A real full disk: a 1 MiB tmpfs (mounting needs root; elsewhere the test says so and is
 * skipped — the same paths are covered in process by test/http/data-dir.test.ts).
 */
function mountTmpfs(dir: string): boolean {
  if (process.getuid?.() !== 0) return false;
  mkdirSync(dir, { recursive: true });
  return Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]).exitCode === 0;
}

const canMount = (() => {
  const probe = join(base, "tmpfs-probe");
  const ok = mountTmpfs(probe);
  if (ok) Bun.spawnSync(["umount", probe]);
  else console.warn("durability: cannot mount a tmpfs (not root?): the full-disk test is skipped");
  return ok;
})();

describe("a full disk", () => {
  test.skipIf(!canMount)(
    "writes answer 507 FAILED JSON, reads work, the member stays UP; room again → writes again",
    async () => {
      const mnt = join(base, "tmpfs");
      expect(mountTmpfs(mnt)).toBe(true);
      try {
        await fullDisk(mnt);
      } finally {
        await stopAll();
        Bun.spawnSync(["umount", "-l", mnt]);
      }
    },
    90_000,
  );
});

async function fullDisk(mnt: string): Promise<void> {
  // A filler to delete later, so the disk can get room back.
  writeFileSync(join(mnt, "filler"), new Uint8Array(256 * 1024));
  const p = await soloNode(join(mnt, "data"), ["--snapshot-log-bytes", String(64 * 1024 * 1024)]);
  const value = "v".repeat(16 * 1024);
  let acked = 0;
  let refused: { status: number; body: Record<string, unknown> } | undefined;
  for (let i = 0; i < 200 && refused === undefined; i++) {
    const r = await http("PUT", p.address, `/kv/big${i}`, value);
    if (r.status === 200) acked++;
    else refused = r;
  }
  expect(acked).toBeGreaterThan(10);
  expect(refused?.status).toBe(507);
  expect(refused?.body.status).toBe("FAILED");
  expect(JSON.stringify(refused?.body)).toMatch(/cannot write its (--data-dir )?log/);
  // Reads go on, the member stays UP, and its status says why writes are refused.
  expect((await http("GET", p.address, "/kv/big0")).body.value).toBe(value);
  expect((await http("GET", p.address, "/health")).body.status).toBe("UP");
  const again = await http("PUT", p.address, "/kv/more", "x");
  expect(again.status).toBe(507);
  const disk = (await http("GET", p.address, "/internal/v1/status")).body.disk;
  expect(disk.writable).toBe(false);
  expect(disk.error).toContain("ENOSPC");
  // Room again: after the retry interval a write attempt brings the log back.
  rmSync(join(mnt, "filler"));
  await waitFor("writes accepted again", async () => {
    return (await http("PUT", p.address, "/kv/after", "back")).status === 200;
  }, 20_000);
  expect((await http("GET", p.address, "/internal/v1/status")).body.disk.writable).toBe(true);
  // Every acknowledged write is on disk: a kill -9 and restart has them all.
  p.kill(9);
  await p.exited;
  const back = await startAt(`${p.name}-back`, p.cmd, p.port, p.env);
  for (let i = 0; i < acked; i++) {
    expect((await http("GET", back.address, `/kv/big${i}`)).status).toBe(200);
  }
  expect((await http("GET", back.address, "/kv/after")).body.value).toBe("back");
}
