/**
 * Entry point of the `dkv` binary: parse flags, then run the orchestrator or a data node.
 * Bad flags: one line on stderr, exit 2. Runtime failures (port taken): one line, exit 1.
 */
import { type Config, helpText, parseConfig, VERSION } from "./config.ts";
import { createLogger } from "./log.ts";
import { DataNode } from "./node/data-node.ts";
import { Orchestrator } from "./orchestrator/orchestrator.ts";
import { internalBodyBytesMax } from "./http/body.ts";
import {
  PortInUseError,
  readTextFile,
  realScheduler,
  runtime,
  serve,
  type Server,
} from "./platform/index.ts";
import {
  type ClientTokens,
  ClusterAuth,
  parseKeyring,
  parseTokenFile,
  SECRET_FILE_BYTES_MAX,
  TOKEN_FILE_BYTES_MAX,
} from "./security/index.ts";
import { createPeerClient } from "./transport/index.ts";

function main(): void {
  const parsed = parseConfig(process.argv.slice(2), process.env);
  switch (parsed.kind) {
    case "help":
      console.log(helpText());
      return;
    case "version": {
      const rt = runtime();
      console.log(`dkv ${VERSION} (${rt.name} ${rt.version})`);
      return;
    }
    case "error":
      console.error(`dkv: ${parsed.message}`);
      process.exit(2);
      return;
    case "config":
      run(parsed.config);
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

function run(config: Config): void {
  const secrets = config.clusterSecretFile === undefined
    ? undefined
    : loadSecrets(config.clusterSecretFile);
  const tokens = config.authTokenFile === undefined ? undefined : loadTokens(config.authTokenFile);
  const log = createLogger(`${config.role} ${config.nodeId}`, config.logLevel);
  const auth = secrets === undefined ? undefined : new ClusterAuth(secrets, {
    selfId: config.nodeId,
    windowMs: config.timers.maxClockSkewMs,
    now: realScheduler.now,
    random: realScheduler.random,
    warn: (msg) => log.warn(`cluster auth: ${msg}`),
  });
  const peers = createPeerClient((url, init) => fetch(url, init), undefined, {
    ...(auth === undefined ? {} : { auth }),
    answerBytesMax: internalBodyBytesMax(config),
  });
  const member = config.role === "orchestrator"
    ? new Orchestrator(config, peers, log, realScheduler, auth, tokens)
    : new DataNode(config, peers, log, realScheduler, auth, tokens);
  let server: Server;
  try {
    server = serve((req) => member.app.fetch(req), {
      host: config.host,
      port: config.port,
      // The largest legitimate body is an internal batch (internalBodyBytesMax). Bodies are read
      // with their own limits (values, internal batches) so that an oversized one gets the FAILED
      // JSON 413; 1 MiB above the largest, the runtime refuses by itself (Bun's plain 413).
      maxBodyBytes: internalBodyBytesMax(config) + 1024 * 1024,
      idleTimeoutMs: config.timers.idleTimeoutMs,
    });
  } catch (e) {
    console.error(`dkv: ${e instanceof PortInUseError ? e.message : (e as Error).message}`);
    process.exit(1);
  }
  const exit = (code: number) => {
    member.stop();
    // Open keep-alive connections can hold the server's stop open: give it a moment, no more.
    const grace = new Promise((r) => setTimeout(r, 300));
    void Promise.race([server.stop(), grace]).finally(() => process.exit(code));
  };
  if (member instanceof DataNode) member.onLeft = (ok) => exit(ok ? 0 : 1);
  member.start();
  if (auth !== undefined) {
    log.info(`cluster secret: ${auth.keyCount} secret(s) from ${config.clusterSecretFile}`);
  }
  if (tokens !== undefined) {
    const n = tokens.roleCounts();
    log.info(
      `client tokens: ${n.read} read, ${n.write} write, ${n.admin} admin from ${config.authTokenFile}`,
    );
  }
  if (config.insecure) log.warn("--insecure: protected mode is off");
  console.log(
    `dkv ${config.role} ${config.nodeId} listening on http://${config.host}:${config.port}`,
  );
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
