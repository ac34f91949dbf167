/**
 * The --data-dir shell (src/node/data-dir.ts) in process, over the in-memory disk twin
 * (test/sim/sim-disk.ts) and once over the real disk: restart from the log only, the snapshot
 * only, and both; group commit; what each --fsync mode keeps through a power cut; a full disk
 * (507, then writable again once there is room, and nothing acknowledged lost); a DataNode's
 * restart from it, and its restart gate.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HintStore } from "../../src/core/hint-store.ts";
import type { KvRecord } from "../../src/core/record.ts";
import type { Entry, NodeState } from "../../src/core/wal-format.ts";
import { DkvError } from "../../src/http/errors.ts";
import { createLogger } from "../../src/log.ts";
import { DataDir, type DurabilityOptions, type FsyncMode } from "../../src/node/data-dir.ts";
import { Store } from "../../src/node/store.ts";
import { DataNode } from "../../src/node/data-node.ts";
import { Orchestrator } from "../../src/orchestrator/orchestrator.ts";
import { Ring } from "../../src/core/view.ts";
import { createPeerClient, MemoryNetwork } from "../../src/transport/index.ts";
import { member as viewMember, testConfig } from "./memory-cluster.ts";
import { type Disk, nodeDisk, PREALLOCATE_BYTES } from "../../src/platform/disk.ts";
import { realScheduler } from "../../src/platform/scheduler.ts";
import type { Scheduler } from "../../src/core/scheduler.ts";
import type { Config } from "../../src/config.ts";
import { SimDisk } from "../sim/sim-disk.ts";
import { rng } from "../unit/seeded.ts";

const log = createLogger({ role: "node", member: "test", level: "error" });
const who = { nodeId: "n1", cluster: "dkv" };

const rec = (key: string, value: string, wallMs: number): KvRecord => ({
  key,
  value,
  version: { wallMs, counter: 0, nodeId: "n1" },
  tombstone: false,
});

/** A member's store and hints wired to a data dir, as DataNode does it. */
async function member(disk: Disk, opts: Partial<DurabilityOptions> = {}) {
  const dir = await DataDir.open(
    disk,
    who,
    { fsync: "batch", fsyncIntervalMs: 2, snapshotLogBytes: 1 << 30, repair: false, ...opts },
    realScheduler,
    log,
  );
  const store = new Store(16);
  const hints = new HintStore({ countMax: 1000, bytesMax: 1 << 20 });
  let state: NodeState | undefined;
  const replayed = dir.replay((e: Entry) => {
    if (e.type === "record") store.apply(e.record);
    else if (e.type === "hint-add") hints.add(e.target, e.record, e.storedAtMs);
    else if (e.type === "hint-remove") hints.forget(e.target, e.record.key, e.record.version);
    else if (e.type === "drop") store.dropPartition(e.partition);
    else if (e.type === "state") state = e.state;
  });
  store.persist = {
    stored: (record) => dir.append({ type: "record", record }),
    dropped: (partition, partitionCount) => dir.append({ type: "drop", partition, partitionCount }),
  };
  hints.persist = {
    added: (h) => dir.append({ type: "hint-add", ...h }),
    removed: (h) => dir.append({ type: "hint-remove", target: h.target, record: h.record }),
  };
  await dir.start({
    state: () => ({
      ...who,
      partitions: 16,
      incarnation: 7,
      hlc: { wallMs: 99, counter: 1 },
      ring: [],
    }),
    capture: function* () {
      for (let p = 0; p < store.partitionCount; p++) {
        for (const record of store.partitionRecords(p)) yield { type: "record", record } as Entry;
      }
      for (const h of [...hints.all()]) yield { type: "hint-add", ...h } as Entry;
    },
  });
  /** Apply as a write path does: check, apply, wait for durability. */
  const write = async (r: KvRecord) => {
    dir.checkWritable();
    store.apply(r);
    await dir.durable();
  };
  return { dir, store, hints, write, replayed, state: () => state };
}

const values = (s: Store) => Object.fromEntries([...s.live()].map((r) => [r.key, r.value]));
const names = (d: SimDisk) => [...d.files.keys()].sort();

describe("restart", () => {
  test("from the log only", async () => {
    const disk = new SimDisk();
    const a = await member(disk);
    for (let i = 0; i < 50; i++) await a.write(rec(`k${i}`, `v${i}`, 1000 + i));
    a.hints.add("n2", rec("h", "hv", 5), 77);
    await a.dir.durable();
    disk.crash();
    const b = await member(disk);
    expect(names(disk).filter((n) => n.endsWith(".snap"))).toEqual([]);
    expect(values(b.store)).toEqual(values(a.store));
    expect([...b.hints.all()]).toEqual([...a.hints.all()]);
    expect(b.state()).toMatchObject({ incarnation: 7, hlc: { wallMs: 99, counter: 1 } });
  });

  test("from the snapshot only", async () => {
    const disk = new SimDisk();
    const a = await member(disk);
    for (let i = 0; i < 50; i++) await a.write(rec(`k${i}`, `v${i}`, 1000 + i));
    await a.dir.snapshotNow();
    disk.crash();
    // Only a snapshot and a log holding just its header and state entry.
    const files = names(disk).filter((n) => n !== "IDENTITY");
    expect(files).toEqual(["log-000000000002.wal", "snap-000000000002.snap"]);
    expect(disk.files.get("log-000000000002.wal")!.size).toBeLessThan(64);
    const b = await member(disk);
    expect(b.replayed.note).toContain("snapshot 2");
    expect(values(b.store)).toEqual(values(a.store));
    expect(b.store.size).toBe(50);
  });

  test("from a snapshot and the log after it; deletes and drops replay too", async () => {
    const disk = new SimDisk();
    const a = await member(disk);
    for (let i = 0; i < 50; i++) await a.write(rec(`k${i}`, `v${i}`, 1000 + i));
    await a.dir.snapshotNow();
    for (let i = 0; i < 50; i += 2) await a.write(rec(`k${i}`, `w${i}`, 2000 + i));
    await a.write({ ...rec("k1", "", 3000), tombstone: true });
    const p = a.store.partitionOf("k3");
    a.store.dropPartition(p);
    await a.dir.durable();
    disk.crash();
    const b = await member(disk);
    expect(b.replayed.note).toContain("snapshot 2");
    expect(values(b.store)).toEqual(values(a.store));
    expect(b.store.get("k1")?.tombstone).toBe(true);
    expect(b.store.partitionSize(p)).toBe(0);
  });

  test("on the real disk (node:fs), across three generations", async () => {
    const path = mkdtempSync(join(tmpdir(), "dkv-data-dir-"));
    try {
      const a = await member(nodeDisk(path), { fsync: "always" });
      for (let i = 0; i < 20; i++) await a.write(rec(`k${i}`, `v${i}`, 1000 + i));
      await a.dir.snapshotNow();
      for (let i = 0; i < 20; i++) await a.write(rec(`j${i}`, `v${i}`, 2000 + i));
      await a.dir.close();
      const b = await member(nodeDisk(path));
      expect(values(b.store)).toEqual(values(a.store));
      await b.write(rec("last", "x", 5000));
      await b.dir.close();
      const c = await member(nodeDisk(path));
      expect(c.store.size).toBe(41);
      await c.dir.close();
    } finally {
      rmSync(path, { recursive: true, force: true });
    }
  });
});

describe("a preallocated log (node:fs)", () => {
  test("zeros ahead of the log while open; after a crash they end the log (not a torn tail); close cuts them", async () => {
    const path = mkdtempSync(join(tmpdir(), "dkv-data-dir-"));
    const logLength = () => {
      const name = readdirSync(path).filter((n) => n.endsWith(".wal")).sort().at(-1)!;
      return { name, length: statSync(join(path, name)).size };
    };
    try {
      const a = await member(nodeDisk(path), { fsync: "always" });
      for (let i = 0; i < 20; i++) await a.write(rec(`k${i}`, `v${i}`, 1000 + i));
      const deadline = Date.now() + 10_000;
      while (logLength().length < PREALLOCATE_BYTES && Date.now() < deadline) await Bun.sleep(5);
      const crashed = logLength();
      expect(crashed.length).toBeGreaterThanOrEqual(PREALLOCATE_BYTES);
      // `a` never closes: the files are what a kill -9 leaves.
      const b = await member(nodeDisk(path));
      expect(b.replayed.note).not.toContain("torn");
      expect(values(b.store)).toEqual(values(a.store));
      // Its start cut the old log back to its entries, and writes go to a new log.
      expect(statSync(join(path, crashed.name)).size).toBeLessThan(4096);
      await b.write(rec("last", "x", 5000));
      await b.dir.close();
      const closed = logLength();
      expect(closed.name).not.toBe(crashed.name);
      expect(closed.length).toBeLessThan(4096);
      const c = await member(nodeDisk(path));
      expect(c.store.size).toBe(21);
      await c.dir.close();
      await a.dir.close();
    } finally {
      rmSync(path, { recursive: true, force: true });
    }
  });
});

describe("--fsync", () => {
  const run = async (fsync: FsyncMode) => {
    const disk = new SimDisk(() => 0.5);
    const a = await member(disk, { fsync });
    disk.syncs = 0;
    const acked: KvRecord[] = [];
    // 64 writes at once, as concurrent requests would arrive.
    await Promise.all(Array.from({ length: 64 }, async (_, i) => {
      const r = rec(`k${i}`, `v${i}`, 1000 + i);
      await a.write(r);
      acked.push(r);
    }));
    const status = a.dir.status();
    const syncs = disk.syncs;
    disk.crash(); // a power cut: only what was synced is sure to be there
    const b = await member(disk);
    const kept = acked.filter((r) => b.store.get(r.key)?.value === r.value).length;
    return { syncs, status, kept, acked: acked.length };
  };

  test("batch: one fsync answers a whole group; every acknowledged write survives a power cut", async () => {
    const r = await run("batch");
    expect(r.acked).toBe(64);
    expect(r.kept).toBe(64);
    expect(r.syncs).toBeLessThan(8);
    expect(r.status.largestGroup).toBeGreaterThan(8);
  });

  test("always: every acknowledged write survives a power cut", async () => {
    const r = await run("always");
    expect(r.kept).toBe(64);
    expect(r.syncs).toBeGreaterThan(0);
  });

  test("never: no fsync; a power cut may lose acknowledged writes", async () => {
    const r = await run("never");
    expect(r.syncs).toBe(0);
    expect(r.status.fsyncs).toBe(0);
    expect(r.kept).toBeLessThan(64);
  });
});

describe("snapshots and compaction", () => {
  test("under writes: the log rolls into snapshots, old files go, disk stays near the live data", async () => {
    const disk = new SimDisk();
    const a = await member(disk, { snapshotLogBytes: 8192 });
    const r = rng(5);
    for (let round = 0; round < 40; round++) {
      await Promise.all(Array.from({ length: 25 }, (_, i) => {
        const k = r.int(100);
        return a.write(rec(`k${k}`, `${round}-${i}-${"x".repeat(40)}`, 1000 + round * 100 + i));
      }));
    }
    await a.dir.durable();
    const st = a.dir.status();
    expect(st.snapshots).toBeGreaterThan(3);
    const snaps = names(disk).filter((n) => n.endsWith(".snap"));
    expect(snaps.length).toBe(1);
    const live = [...a.store.live()].reduce((n, x) => n + x.key.length + x.value.length, 0);
    // Written in all: about 1000 × 70 B; kept: the snapshot and at most a log of 8 KiB or so.
    expect(disk.bytes()).toBeLessThan(live * 3 + 2 * 8192);
    disk.crash();
    const b = await member(disk);
    expect(values(b.store)).toEqual(values(a.store));
  });
});

describe("a full disk", () => {
  test("507 while full, reads go on; writable again once there is room; nothing acknowledged lost", async () => {
    const disk = new SimDisk(rng(3).next);
    const a = await member(disk, { fsyncIntervalMs: 1 });
    for (let i = 0; i < 20; i++) await a.write(rec(`k${i}`, `v${i}`, 1000 + i));
    disk.full = true;
    const failed = await a.write(rec("x", "y", 5000)).then(() => undefined, (e) => e);
    expect(failed).toBeInstanceOf(DkvError);
    expect((failed as DkvError).status).toBe(507);
    expect((failed as DkvError).message).toContain("ENOSPC");
    expect(a.dir.status()).toMatchObject({ writable: false, errors: 1 });
    // Refused before anything is applied.
    expect(() => a.dir.checkWritable()).toThrow(/cannot write its log/);
    expect(a.store.get("k3")?.value).toBe("v3"); // reads go on
    disk.full = false;
    // The retry comes at most every second; a write attempt starts it.
    await new Promise((r) => setTimeout(r, 1100));
    expect(() => a.dir.checkWritable()).toThrow(); // this attempt starts the retry
    await new Promise((r) => setTimeout(r, 50));
    expect(a.dir.status().writable).toBe(true);
    await a.write(rec("after", "z", 6000));
    disk.crash();
    const b = await member(disk);
    for (let i = 0; i < 20; i++) expect(b.store.get(`k${i}`)?.value).toBe(`v${i}`);
    expect(b.store.get("after")?.value).toBe("z");
  });
});

describe("a DataNode restarted from its data dir", () => {
  test("keeps its data, hints and incarnation, and its versions stay monotonic when the wall clock went back", async () => {
    const disk = new SimDisk();
    let nowMs = 1_800_000_000_000;
    const sched = { ...realScheduler, now: () => nowMs };
    const config = loneNode();
    const net = new MemoryNetwork();
    const boot = async () => {
      const dir = await DataDir.open(
        disk,
        { nodeId: config.nodeId, cluster: config.clusterName },
        { fsync: "always", fsyncIntervalMs: 1, snapshotLogBytes: 1 << 30, repair: false },
        sched,
        log,
      );
      const node = new DataNode(
        config,
        createPeerClient(net.fetch),
        log,
        sched,
        undefined,
        undefined,
        dir,
      );
      await dir.start(node.durabilitySource());
      node.useView({
        instance: "test",
        epoch: 1,
        replicationFactor: 1,
        partitions: 16,
        members: [viewMember(config.nodeId)],
      });
      return { node, dir };
    };
    const a = await boot();
    const w1 = await a.node.coordinator.write("k", "v1", false, "one");
    await a.node.coordinator.write("k", "v2", false, "one");
    a.node.hints.add("mem:8081", rec("h", "hv", 5), nowMs);
    await a.dir.durable();
    const incarnation = a.node.incarnation;
    const before = a.node.coordinator.clockState();
    disk.crash(); // nothing unsynced to lose: --fsync always, and every write was awaited
    nowMs -= 60_000; // the wall clock went a minute back across the restart
    const b = await boot();
    expect(b.node.store.get("k")?.value).toBe("v2");
    expect(b.node.hints.count).toBe(1);
    expect(b.node.incarnation).toBeGreaterThan(incarnation);
    const w3 = await b.node.coordinator.write("k", "v3", false, "one");
    const after = w3.record.version;
    expect(
      after.wallMs > before.wallMs ||
        (after.wallMs === before.wallMs && after.counter > before.counter),
    )
      .toBe(true);
    expect(after.wallMs).toBeGreaterThan(w1.record.version.wallMs);
    expect(b.node.store.get("k")?.value).toBe("v3");
  });
});

/** mem:8080 joining through mem:9, where nobody answers: all it knows is in its data dir. */
function loneNode(): Config {
  return testConfig(["--role", "node", "--host", "mem", "--port", "8080", "--join", "mem:9"]);
}

/** The data dir of `config`'s member on `disk` (--fsync always), opened as a start opens it. */
function openDir(disk: SimDisk, config: Config, sched: Scheduler = realScheduler) {
  return DataDir.open(
    disk,
    { nodeId: config.nodeId, cluster: config.clusterName },
    { fsync: "always", fsyncIntervalMs: 1, snapshotLogBytes: 1 << 30, repair: false },
    sched,
    log,
  );
}

/** A (re)start of a DataNode from `disk` (--fsync always): its dir opened, the node made, started. */
async function bootFrom(disk: SimDisk, config: Config, sched: Scheduler = realScheduler) {
  const dir = await openDir(disk, config, sched);
  const peers = createPeerClient(new MemoryNetwork().fetch);
  const node = new DataNode(config, peers, log, sched, undefined, undefined, dir);
  await dir.start(node.durabilitySource());
  return { node, dir };
}

describe("the restart gate", () => {
  test("stays shut until every member of the ring it had is back, not just a majority", async () => {
    // Seed 6 of the simulator: N=1 on four nodes, a power cut, the orchestrator back empty. Three
    // of the four were back when the gate opened; the fourth held the only copy of a key, which
    // the smaller ring had given to a member with an older value: a stale read of an acknowledged
    // write. A majority of the members says nothing about each key's replicas being back.
    const disk = new SimDisk();
    const sched = { ...realScheduler, now: () => 1_800_000_000_000 }; // --dead-after never passes
    const config = loneNode();
    const ids = ["mem:8080", "mem:8081", "mem:8082", "mem:8083"];
    const view = (epoch: number, members: string[]) => ({
      instance: "test",
      epoch,
      replicationFactor: 1,
      partitions: 16,
      members: members.map((id) => viewMember(id)),
    });
    const boot = () => bootFrom(disk, config, sched);
    const a = await boot();
    a.node.useView(view(1, ids)); // the ring of four goes into the log at once
    await a.dir.durable();
    expect(a.node.restartGate()).toBeUndefined(); // a fresh dir: nothing to wait for
    disk.crash();
    const b = await boot();
    b.node.useView(view(1, ids.slice(0, 3))); // three of the four back: a majority
    expect(b.node.restartGate()).toContain("3 of 4");
    await expect(b.node.coordinator.read("k", "one")).rejects.toThrow(
      /restarted from its data dir/,
    );
    b.node.useView(view(2, ids)); // the fourth is back
    expect(b.node.restartGate()).toBeUndefined();
  });

  test("the members of the ring it had keep their places in its table while they are away", async () => {
    // Seeds 5082, 9150, 9579: the gate kept the restarted node quiet, but the ring it formed
    // with an orchestrator back empty and a node that joined meanwhile gave the keys of the
    // members still away to members without them, and those answered 404.
    const disk = new SimDisk();
    const config = loneNode();
    const ids = ["mem:8080", "mem:8081", "mem:8082"];
    const boot = () => bootFrom(disk, config);
    const a = await boot();
    expect(a.node.agent.swim.members().map((m) => m.id)).toEqual(["mem:8080"]);
    a.node.useView({
      instance: "test",
      epoch: 1,
      replicationFactor: 3,
      partitions: 16,
      members: ids.map((id) => viewMember(id)),
    });
    await a.dir.durable();
    disk.crash();
    const b = await boot();
    const held = b.node.agent.swim.members().map((m) => [m.id, m.state, m.inRing]);
    expect(held).toEqual([
      ["mem:8080", "UP", true],
      ["mem:8081", "DOWN", true],
      ["mem:8082", "DOWN", true],
    ]);
  });

  test("members that left stay LEFT after a restart, and the ring's at the incarnations it knew", async () => {
    // Seed 1514 (N = 1): a member left gracefully just before a power cut of every member. One
    // that had not heard the leave held it DOWN in the ring after the restart; the others had
    // forgotten it, so took that in, and its partitions' new owners waited for it for good.
    const disk = new SimDisk();
    const config = loneNode();
    const boot = () => bootFrom(disk, config);
    const a = await boot();
    const at = (id: string, incarnation: number) => ({ ...viewMember(id), incarnation });
    a.node.useView({
      instance: "test",
      epoch: 1,
      replicationFactor: 1,
      partitions: 16,
      members: [at("mem:8080", 10), at("mem:8081", 40), at("mem:8082", 50), at("mem:8083", 60)],
    });
    a.node.useView({
      instance: "test",
      epoch: 2,
      replicationFactor: 1,
      partitions: 16,
      members: [
        at("mem:8080", 10),
        at("mem:8081", 40),
        at("mem:8082", 50),
        { ...at("mem:8083", 60), state: "LEFT", inRing: false },
      ],
    });
    await a.dir.durable();
    disk.crash();
    const b = await boot();
    const held = b.node.agent.swim.members().map((m) => [m.id, m.state, m.inRing, m.incarnation]);
    expect(held).toEqual([
      ["mem:8080", "UP", true, b.node.incarnation],
      ["mem:8081", "DOWN", true, 39],
      ["mem:8082", "DOWN", true, 49],
      ["mem:8083", "LEFT", false, 60],
    ]);
    // It logged them again as it started (before any view): a second restart knows as much.
    await b.dir.durable();
    disk.crash();
    const c = await boot();
    expect(c.node.agent.swim.member("mem:8083")).toMatchObject({ state: "LEFT", incarnation: 60 });
  });
});

describe("an orchestrator with --data-dir", () => {
  test("restarted, it holds the ring it had, so a node joining first does not make a ring of its own", async () => {
    // Seeds 1213, 1497, 1928, 2428, 6659, 7720, 8399, 9213: a power cut of every member, the
    // orchestrator back knowing nobody, a new node joining before any old one was back: the ring
    // was that node alone, and it answered 404 (or took writes) for every key.
    const disk = new SimDisk();
    const config = testConfig(["--role", "orchestrator", "--host", "mem", "--port", "7000"]);
    const ids = ["mem:8080", "mem:8081", "mem:8082"];
    const boot = async () => {
      const dir = await openDir(disk, config);
      const peers = createPeerClient(new MemoryNetwork().fetch);
      const orch = new Orchestrator(
        config,
        peers,
        log,
        realScheduler,
        undefined,
        undefined,
        undefined,
        dir,
      );
      await dir.start(orch.durabilitySource());
      return { orch, dir };
    };
    const a = await boot();
    expect(a.orch.agent.swim.members().map((m) => m.id)).toEqual(["mem:7000"]);
    a.orch.useView({
      instance: "test",
      epoch: 1,
      replicationFactor: 3,
      partitions: 16,
      members: ids.map((id) => viewMember(id)),
    });
    await a.dir.durable();
    const incarnation = a.orch.incarnation;
    disk.crash();
    const b = await boot();
    expect(b.orch.incarnation).toBeGreaterThan(incarnation);
    const held = b.orch.agent.swim.members().map((m) => [m.id, m.state, m.inRing]);
    expect(held).toEqual([
      ["mem:7000", "UP", false],
      ["mem:8080", "DOWN", true],
      ["mem:8081", "DOWN", true],
      ["mem:8082", "DOWN", true],
    ]);
    // A member that leaves is kept as LEFT (seed 1514: see the node's test above).
    b.orch.useView({
      instance: "test",
      epoch: 2,
      replicationFactor: 3,
      partitions: 16,
      members: [
        ...ids.slice(0, 2).map((id) => viewMember(id)),
        { ...viewMember("mem:8082"), incarnation: 70, state: "LEFT", inRing: false },
      ],
    });
    await b.dir.durable();
    disk.crash();
    const c = await boot();
    expect(c.orch.agent.swim.member("mem:8082")).toMatchObject({
      state: "LEFT",
      inRing: false,
      incarnation: 70,
    });
  });
});

describe("Paxos state (issue 12)", () => {
  // A replica that forgets a promise after a power cut lets an older ballot through, and one that
  // forgets an accepted proposal lets a chosen value be overwritten (sim seed 176: an increment a
  // 412 had shown came back undone). With --data-dir both are logged and durable before the answer.
  for (const snapshot of [false, true]) {
    test(`a promise and an accepted proposal survive a power cut${snapshot ? " (from a snapshot)" : ""}`, async () => {
      const disk = new SimDisk();
      const config = loneNode();
      const view = {
        instance: "test",
        epoch: 1,
        replicationFactor: 1,
        partitions: 16,
        members: [viewMember("mem:8080")],
      };
      const boot = async () => {
        const booted = await bootFrom(disk, config);
        booted.node.useView(view);
        return booted;
      };
      const a = await boot();
      // The replica-list fingerprint a coordinator on the same ring sends with each op.
      const ring = new Ring(view);
      const set = (n: DataNode, key: string) => ring.setHash[n.store.partitionOf(key)]!;
      const base = Date.now() + 500; // above the floor a fresh dir starts with (its start time)
      const ballot = (wallMs: number, nodeId = "mem:8081") => ({
        wallMs: base + wallMs,
        counter: 0,
        nodeId,
      });
      expect(a.node.paxos.prepare("k", ballot(10), set(a.node, "k")).ok).toBe(true);
      const proposal = rec("k", "chosen", Date.now());
      expect(a.node.paxos.propose(ballot(10), proposal, set(a.node, "k")).ok).toBe(true);
      expect(a.node.paxos.prepare("other", ballot(20), set(a.node, "other")).ok).toBe(true);
      await a.dir.durable();
      if (snapshot) await a.dir.snapshotNow();
      disk.crash();
      const b = await boot();
      // The promises hold: no ballot at or below them is promised again.
      expect(b.node.paxos.prepare("k", ballot(10), set(b.node, "k"))).toMatchObject({ ok: false });
      expect(b.node.paxos.prepare("other", ballot(15), set(b.node, "other"))).toMatchObject({
        ok: false,
      });
      // The accepted proposal comes back with the next promise, to be finished.
      const again = b.node.paxos.prepare("k", ballot(30), set(b.node, "k"));
      expect(again.ok).toBe(true);
      expect(again.accepted?.record.value).toBe("chosen");
      expect(again.accepted?.ballot).toEqual(ballot(10));
    });
  }
});
