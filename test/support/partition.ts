/**
 * Real network partitions between `dkv` processes on loopback, with iptables. Every member runs
 * under its own uid (setpriv), and OUTPUT rules matching (sender uid, destination port) drop what
 * one member sends to another. The test process (root) is never matched, so a test keeps talking
 * to a member its peers cannot reach. Every rule names one uid and exact ports, so nothing else on
 * the machine (other test files, other worktrees) is touched; rules are removed by `heal()`,
 * `healAll()` (call it in afterEach/afterAll) and, if a test file crashes, by an exit hook.
 *
 * `partitionsUsable()` says whether this works here (root, iptables with the owner match,
 * setpriv); where it does not, tests fall back to SIGSTOP and say so. DKV_TEST_PARTITIONS=sigstop
 * forces the fallback (to run it on a machine where iptables works).
 */
import { freePorts, type Proc, spawnLogged } from "./cluster.ts";
import { DKV } from "./cluster.ts";

/** Uids members run under: far from real accounts; each member of a cluster gets its own. */
const UID_BASE = 64_100;

const rules = new Set<string[]>();
process.on("exit", () => {
  for (const r of rules) Bun.spawnSync(["iptables", "-w", "-D", ...r]);
});

function iptables(op: "-A" | "-D", rule: string[]): boolean {
  const r = Bun.spawnSync(["iptables", "-w", op, ...rule], { stderr: "pipe", stdout: "pipe" });
  return r.exitCode === 0;
}

let usable: boolean | undefined;

/** True when this process can add and remove an owner-matched iptables rule and run setpriv. */
export function partitionsUsable(): boolean {
  if (usable !== undefined) return usable;
  usable = false;
  if (process.env["DKV_TEST_PARTITIONS"] === "sigstop") return false;
  if (process.getuid?.() !== 0 || !Bun.which("iptables") || !Bun.which("setpriv")) return false;
  const [port] = freePorts(1);
  const probe = dropRule(UID_BASE - 1, [port!]);
  if (!iptables("-A", probe)) return false;
  usable = iptables("-D", probe);
  return usable;
}

function dropRule(uid: number, ports: readonly number[]): string[] {
  return [
    "OUTPUT",
    "-o",
    "lo",
    "-p",
    "tcp",
    "-m",
    "owner",
    "--uid-owner",
    String(uid),
    "-m",
    "multiport",
    "--dports",
    ports.join(","),
    "-j",
    "DROP",
  ];
}

/** Uid each member spawned through `spawnAs` runs under. */
const uids = new Map<Proc, number>();
/** Every port each member listens on (HTTP, and its TCP peer link's when it has one). */
const listening = new Map<Proc, number[]>();
let nextUid = UID_BASE;

/**
 * Start `cmd` (a dkv command line without the binary) as a member under its own uid. `port` is
 * its HTTP port, `otherPorts` the rest it listens on (its --peer-port): a cut drops them all.
 */
export function spawnAs(
  name: string,
  args: string[],
  port: number,
  otherPorts: readonly number[] = [],
): Proc {
  const uid = nextUid++;
  const p = spawnLogged(
    name,
    ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", DKV, ...args],
    port,
  );
  uids.set(p, uid);
  listening.set(p, [port, ...otherPorts]);
  return p;
}

/**
 * Cut `victim` off from `peers` in both directions: the victim's packets to their ports and
 * theirs to its ports (HTTP and peer link) are dropped (connections hang, as on a real partition). Returns heal().
 */
export function cut(victim: Proc, peers: readonly Proc[]): () => void {
  const added: string[][] = [];
  const add = (rule: string[]) => {
    if (!iptables("-A", rule)) throw new Error(`iptables -A ${rule.join(" ")} failed`);
    rules.add(rule);
    added.push(rule);
  };
  const portsOf = (p: Proc) => listening.get(p) ?? [p.port];
  add(dropRule(uidOf(victim), peers.flatMap(portsOf)));
  for (const p of peers) add(dropRule(uidOf(p), portsOf(victim)));
  return () => {
    for (const r of added) {
      iptables("-D", r);
      rules.delete(r);
    }
  };
}

/** Remove every rule this process added. */
export function healAll(): void {
  for (const r of rules) iptables("-D", r);
  rules.clear();
}

function uidOf(p: Proc): number {
  const uid = uids.get(p);
  if (uid === undefined) throw new Error(`${p.name} was not started with spawnAs`);
  return uid;
}
