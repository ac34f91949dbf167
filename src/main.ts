/**
 * Entry point of the `dkv` binary: parse flags, then run the orchestrator or a data node.
 * Bad flags: one line on stderr, exit 2. Runtime failures (port taken): one line, exit 1.
 */
import { type Config, helpText, parseConfig, VERSION } from "./config.ts";
import { createLogger } from "./log.ts";
import { DataNode } from "./node/data-node.ts";
import { Orchestrator } from "./orchestrator/orchestrator.ts";
import { PortInUseError, runtime, serve, type Server } from "./platform/index.ts";
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

function run(config: Config): void {
  const log = createLogger(`${config.role} ${config.nodeId}`, config.logLevel);
  const peers = createPeerClient((url, init) => fetch(url, init));
  const member = config.role === "orchestrator"
    ? new Orchestrator(config, peers, log, crypto.randomUUID())
    : new DataNode(config, peers, log);
  let server: Server;
  try {
    server = serve((req) => member.app.fetch(req), {
      host: config.host,
      port: config.port,
      // Internal batches carry JSON-escaped values (up to 6 bytes per byte) plus framing.
      maxBodyBytes: config.valueBytesMax * 7 + 1024 * 1024,
    });
  } catch (e) {
    console.error(`dkv: ${e instanceof PortInUseError ? e.message : (e as Error).message}`);
    process.exit(1);
  }
  member.start();
  console.log(
    `dkv ${config.role} ${config.nodeId} listening on http://${config.host}:${config.port}`,
  );
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) process.exit(0);
    stopping = true;
    log.info(`${signal}: stopping`);
    member.stop();
    void server.stop().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref?.();
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main();
