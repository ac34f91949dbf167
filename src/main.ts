/**
 * Entry point of the `dkv` binary: a client command (`dkv get KEY`, src/cli), or parse flags and
 * run the orchestrator, a data node or a gateway.
 * Bad flags: one line on stderr, exit 2 (no flags at all: that line and the usage, exit 2).
 * Runtime failures (port taken): one line, exit 1.
 */
import { type Config, helpText, parseConfig, VERSION } from "./config.ts";
import { COMMANDS, runCli } from "./cli/index.ts";
import { createLogger, type Logger } from "./log.ts";
import { DataNode } from "./node/data-node.ts";
import { DataDir, DataDirError, durabilityOptions } from "./node/data-dir.ts";
import { lockDataDir, nodeDisk } from "./platform/disk.ts";
import { Orchestrator } from "./orchestrator/orchestrator.ts";
import { internalBodyBytesMax } from "./http/body.ts";
import { Metrics } from "./http/metrics.ts";
import {
  peerFetch,
  PortInUseError,
  readTextFile,
  realScheduler,
  runtime,
  serve,
  type Server,
  type TlsMaterial,
} from "./platform/index.ts";
import {
  checkTlsPem,
  type ClientTokens,
  ClusterAuth,
  parseKeyring,
  parseTokenFile,
  SECRET_FILE_BYTES_MAX,
  TLS_FILE_BYTES_MAX,
  TOKEN_FILE_BYTES_MAX,
} from "./security/index.ts";
import { createPeerClient } from "./transport/index.ts";
import { tcpPeerClient } from "./transport/peer-tcp.ts";
import { canConnectTcp, connectTcp, type TcpServer } from "./platform/tcp.ts";
import { type LinkCalls, listenPeerTcp } from "./http/peer-tcp-server.ts";
import { RespFront } from "./resp/index.ts";
import type { View } from "./core/view.ts";

function main(): void {
  const argv = process.argv.slice(2);
  if (argv[0] !== undefined && COMMANDS.includes(argv[0])) {
    // A client command (src/cli): talks to a running cluster, then exits with its code.
    void runCli(argv).then((code) => process.exit(code));
    return;
  }
  const parsed = parseConfig(argv, process.env);
  switch (parsed.kind) {
    case "help":
      console.log(helpText());
      return;
    case "version": {
      const rt = runtime();
      console.log(`dkv ${VERSION} (${rt.name} ${rt.version})`);
      return;
    }
    case "usage":
      // Plain `dkv`: what is missing, then the usage; a usage error, so on stderr with exit 2.
      console.error(`dkv: ${parsed.message}\n\n${helpText()}`);
      process.exit(2);
      return;
    case "error":
      console.error(`dkv: ${parsed.message}`);
      process.exit(2);
      return;
    case "config":
      void run(parsed.config);
  }
}

/** The secrets of --cluster-secret-file; a problem is one line on stderr and exit code 2. */
function loadSecrets(path: string): readonly Uint8Array[] {
  let text: string;
  try {
    text = readTextFile(path, SECRET_FILE_BYTES_MAX);
  } catch (e) {
    console.error(`dkv: --cluster-secret-file: ${(e as Error).message}`);
    process.exit(2);
  }
  const parsed = parseKeyring(text);
  if (!parsed.ok) {
    console.error(`dkv: --cluster-secret-file: ${path}: ${parsed.message}`);
    process.exit(2);
  }
  return parsed.secrets;
}

/**
 * The PEM files of the --tls-* flags, checked (src/security/tls-files.ts). A problem is one line
 * on stderr and exit code 2; warnings (a certificate that does not name the advertised host, or
 * has expired) are returned for the log.
 */
function loadTls(config: Config): { tls: TlsMaterial; warnings: readonly string[] } | undefined {
  const files = config.tls;
  if (files === undefined) return undefined;
  const fail = (flag: string, message: string): never => {
    console.error(`dkv: ${flag}: ${message}`);
    process.exit(2);
  };
  const read = (flag: string, path: string): string => {
    try {
      return readTextFile(path, TLS_FILE_BYTES_MAX);
    } catch (e) {
      return fail(flag, (e as Error).message);
    }
  };
  const tls: TlsMaterial = {
    cert: read("--tls-cert", files.certFile),
    key: read("--tls-key", files.keyFile),
    clientAuth: files.clientAuth,
    ...(files.caFile === undefined ? {} : { ca: read("--tls-ca", files.caFile) }),
  };
  const host = config.advertise.slice(0, config.advertise.lastIndexOf(":"));
  const check = checkTlsPem(tls, host, Date.now());
  if (!check.ok) {
    const path = check.flag === "--tls-key"
      ? files.keyFile
      : check.flag === "--tls-ca"
      ? files.caFile
      : files.certFile;
    fail(check.flag, `${path}: ${check.message}`);
  }
  return { tls, warnings: check.ok ? check.warnings : [] };
}

/** The tokens of --auth-token-file; a problem is one line on stderr and exit code 2. */
function loadTokens(path: string): ClientTokens {
  let text: string;
  try {
    text = readTextFile(path, TOKEN_FILE_BYTES_MAX);
  } catch (e) {
    console.error(`dkv: --auth-token-file: ${(e as Error).message}`);
    process.exit(2);
  }
  const parsed = parseTokenFile(text);
  if (!parsed.ok) {
    console.error(`dkv: --auth-token-file: ${path}: ${parsed.message}`);
    process.exit(2);
  }
  return parsed.tokens;
}

/**
 * --data-dir: take its lock, check whose it is, and read it (replayed by the DataNode). A
 * problem is one line on stderr and exit code 1.
 */
async function openDataDir(config: Config, log: Logger): Promise<DataDir | undefined> {
  const dir = config.dataDir;
  if (dir === undefined) return undefined;
  try {
    const release = lockDataDir(dir);
    process.on("exit", release);
    return await DataDir.open(
      nodeDisk(dir),
      { nodeId: config.nodeId, cluster: config.clusterName },
      durabilityOptions(config),
      realScheduler,
      log,
    );
  } catch (e) {
    return fatal(`--data-dir ${dir}: ${(e as Error).message}`);
  }
}

/**
 * The advertised link port of each member of `view` (--peer-port, carried in its gossip record),
 * by address: what the TCP peer client asks on every call, rebuilt only when the view changes.
 */
function linkPorts(view: () => View | undefined): (address: string) => number | undefined {
  let seen: View | undefined;
  let ports = new Map<string, number>();
  return (address) => {
    const v = view();
    if (v !== seen) {
      seen = v;
      ports = new Map();
      for (const m of v?.members ?? []) {
        if (m.linkPort !== undefined && m.state !== "LEFT") ports.set(m.address, m.linkPort);
      }
    }
    return ports.get(address);
  };
}

function fatal(message: string): never {
  console.error(`dkv: ${message.split("\n")[0]}`);
  process.exit(1);
}

async function run(config: Config): Promise<void> {
  const secrets = config.clusterSecretFile === undefined
    ? undefined
    : loadSecrets(config.clusterSecretFile);
  const loaded = loadTls(config);
  const tls = loaded?.tls;
  const tokens = config.authTokenFile === undefined ? undefined : loadTokens(config.authTokenFile);
  const log = createLogger({
    role: config.role,
    member: config.nodeId,
    level: config.logLevel,
    format: config.logFormat,
  });
  const auth = secrets === undefined ? undefined : new ClusterAuth(secrets, {
    selfId: config.nodeId,
    windowMs: config.timers.maxClockSkewMs,
    now: realScheduler.now,
    random: realScheduler.random,
    warn: (msg) => log.warn(`cluster auth: ${msg}`),
  });
  // One registry per process: its own figures (RSS, heap, event-loop lag) and the member's.
  const metrics = new Metrics({ process: true });
  const httpPeers = createPeerClient(metrics.meterPeers(peerFetch(tls)), undefined, {
    ...(auth === undefined ? {} : { auth }),
    answerBytesMax: internalBodyBytesMax(config),
    scheme: tls === undefined ? "http" : "https",
  });
  // Peers that advertise a link port (--peer-port) get every call but /health over it, once it
  // is up; the rest over HTTP. The view is the member's, once it exists.
  let viewOf: () => View | undefined = () => undefined;
  const tcpPeers = !canConnectTcp() ? undefined : tcpPeerClient(httpPeers, {
    linkPort: linkPorts(() => viewOf()),
    maxFrameBytes: internalBodyBytesMax(config),
    dial: (host, port, h) => connectTcp(host, port, h, tls),
    ...(auth === undefined ? {} : { auth }),
    onRefused: (peer, why) => log.debug(`peer link to ${peer} not up (${why}): HTTP for now`),
    observe: (peer, outcome, ms) => metrics.observePeer(peer, outcome, ms),
  });
  const peers = tcpPeers ?? httpPeers;
  const dataDir = await openDataDir(config, log);
  // A node's TCP peer link listens before the member is built: the port it got (the OS picks
  // one under the default --peer-port auto) is the one its gossip record advertises. Calls
  // that come before the member exists are refused as unavailable.
  let linkCalls: () => LinkCalls | undefined = () => undefined;
  let peerLink: TcpServer | undefined;
  if (config.peerPort !== undefined && config.role === "node") {
    try {
      peerLink = listenPeerTcp(() => linkCalls(), {
        host: config.host,
        port: config.peerPort,
        maxFrameBytes: internalBodyBytesMax(config),
        log,
        ...(auth === undefined ? {} : { auth }),
        ...(tls === undefined ? {} : { tls }),
        maxConnections: config.maxConnections,
        idleTimeoutMs: config.timers.idleTimeoutMs,
        observe: (route, status) => metrics.observeLink(route, status),
        onConnection: (outcome) => metrics.observeLinkConnection(outcome),
      });
    } catch (e) {
      // A port given must be listened on; under the default (auto: e.g. Deno with TLS, which
      // has no TLS listener here) the member goes on without a link: peers call it over HTTP.
      if (config.peerPort !== 0) return fatal(`--peer-port: ${(e as Error).message}`);
      log.warn(`peer link: not listening (${(e as Error).message}); peers call over HTTP`);
    }
    config = { ...config, peerPort: peerLink?.port };
  }
  let member: Orchestrator | DataNode;
  try {
    // The orchestrator and a gateway hold no data: the same class (src/orchestrator).
    member = config.role === "node"
      ? new DataNode(config, peers, log, realScheduler, auth, tokens, dataDir, metrics)
      : new Orchestrator(config, peers, log, realScheduler, auth, tokens, metrics, dataDir);
    if (dataDir !== undefined) await dataDir.start(member.durabilitySource());
    const m = member;
    viewOf = () => m.ctx.view();
    if (m instanceof DataNode) linkCalls = () => m.peerCalls;
  } catch (e) {
    if (!(e instanceof DataDirError)) throw e;
    return fatal(`--data-dir ${config.dataDir}: ${e.message}`);
  }
  let server: Server;
  try {
    server = serve((req) => member.app.fetch(req), {
      host: config.host,
      port: config.port,
      // The largest legitimate body is an internal batch (internalBodyBytesMax). Bodies are read
      // with their own limits (values, internal batches) so that an oversized one gets the FAILED
      // JSON 413; 1 MiB above the largest, the runtime refuses by itself (Bun's plain 413).
      maxBodyBytes: internalBodyBytesMax(config) + 1024 * 1024,
      ...(tls === undefined ? {} : { tls }),
      onListenError: (message) => {
        console.error(`dkv: ${message}`);
        process.exit(1);
      },
      idleTimeoutMs: config.timers.idleTimeoutMs,
    });
  } catch (e) {
    console.error(`dkv: ${e instanceof PortInUseError ? e.message : (e as Error).message}`);
    process.exit(1);
  }
  if (peerLink !== undefined) {
    log.info(`peer link: peers' calls over TCP on port ${peerLink.port}`);
  }
  let resp: RespFront | undefined;
  if (config.respPort !== undefined) {
    resp = new RespFront(member.ctx, {
      host: config.host,
      port: config.respPort,
      maxConnections: config.maxConnections,
      bufferBytes: config.respBufferBytes,
    });
    try {
      resp.start();
    } catch (e) {
      console.error(`dkv: --resp-port: ${(e as Error).message}`);
      void server.stop();
      process.exit(1);
    }
    const front = resp;
    member.ctx.respStatus = () => front.state.stats.json(front.state.sessions.size);
  }
  const exit = (code: number) => {
    member.stop();
    metrics.stop();
    void dataDir?.close();
    resp?.stop();
    peerLink?.stop();
    tcpPeers?.close();
    // Open keep-alive connections can hold the server's stop open: give it a moment, no more.
    const grace = new Promise((r) => setTimeout(r, 300));
    void Promise.race([server.stop(), grace]).finally(() => process.exit(code));
  };
  if (member instanceof DataNode) member.onLeft = (ok) => exit(ok ? 0 : 1);
  member.start();
  metrics.startLagSampler(realScheduler);
  if (auth !== undefined) {
    log.info(`cluster secret: ${auth.keyCount} secret(s) from ${config.clusterSecretFile}`);
  }
  if (tls !== undefined) {
    log.info(
      `TLS: peers dial https, verified against ${
        config.tls?.caFile ?? "the default roots"
      }; client certificates ${tls.clientAuth ? "required (mutual TLS)" : "not required"}`,
    );
    for (const w of loaded?.warnings ?? []) log.warn(`TLS: ${w}`);
  }
  const scheme = tls === undefined ? "http" : "https";
  if (tokens !== undefined) {
    const n = tokens.roleCounts();
    log.info(
      `client tokens: ${n.read} read, ${n.write} write, ${n.admin} admin from ${config.authTokenFile}`,
    );
  }
  if (config.insecure) log.warn("--insecure: protected mode is off");
  console.log(
    `dkv ${config.role} ${config.nodeId} listening on ${scheme}://${config.host}:${config.port}`,
  );
  // The start-up line: who this is and the ring settings it brings (a node takes the cluster's
  // from its orchestrator once it has joined; without one its own hold).
  log.info(
    `started: ${config.role} ${config.nodeId} at ${config.advertise}, ` +
      `${config.partitions} partitions, N=${config.replicationFactor}`,
    {
      event: "start",
      version: VERSION,
      id: config.nodeId,
      address: config.advertise,
      listen: `${scheme}://${config.host}:${config.port}`,
      partitions: config.partitions,
      replicationFactor: config.replicationFactor,
      ringSettingsFrom: config.role === "node" && config.orchestrator !== undefined
        ? "orchestrator"
        : "this member",
      dashboard: `${scheme}://${config.advertise}/ui`,
    },
  );
  if (resp !== undefined) {
    console.log(
      `dkv ${config.role} ${config.nodeId} speaks RESP on ${config.host}:${config.respPort}`,
    );
  }
  // First SIGTERM/SIGINT: a node leaves gracefully (hands its data off), the orchestrator stops.
  // A second one exits at once.
  let signalled = false;
  const onSignal = (signal: string) => {
    if (signalled) {
      log.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    signalled = true;
    if (member instanceof DataNode) {
      log.info(`${signal}: leaving the cluster (send it again to exit at once)`);
      void member.leave();
    } else {
      log.info(`${signal}: stopping`);
      exit(0);
    }
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
}

main();
