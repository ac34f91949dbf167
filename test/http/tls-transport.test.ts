/**
 * The peer client over TLS with the platform's own server and fetch (real sockets on loopback,
 * certificates made with openssl at run time): a peer is trusted only when its certificate
 * chains to --tls-ca, a server with client authentication refuses a caller without a certificate
 * from that CA, and a TLS failure is marked (`tlsSuspect`) so gossip can say why.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { peerFetch, serve, type Server, type TlsMaterial } from "../../src/platform/index.ts";
import { checkTlsPem } from "../../src/security/tls-files.ts";
import { createPeerClient, PeerError } from "../../src/transport/index.ts";
import { CertDir } from "../support/certs.ts";
import { freePort } from "../support/cluster.ts";

const certs = new CertDir().ca("cluster").ca("other");
certs.cert("a", "cluster").cert("b", "cluster").cert("stranger", "other");
const material = (name: string, ca: string, clientAuth = false): TlsMaterial => ({
  cert: certs.pem(`${name}.crt`),
  key: certs.pem(`${name}.key`),
  ca: certs.pem(`${ca}-ca.crt`),
  clientAuth,
});

const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  certs.remove();
});

/** A TLS server answering /health as a member does; its address. */
function start(tls: TlsMaterial): string {
  const port = freePort();
  const health = { status: "UP", id: `127.0.0.1:${port}`, role: "node", incarnation: 1 };
  servers.push(
    serve(() => Response.json(health), {
      host: "127.0.0.1",
      port,
      maxBodyBytes: 1024,
      idleTimeoutMs: 30_000,
      tls,
    }),
  );
  return `127.0.0.1:${port}`;
}

const client = (tls: TlsMaterial | undefined, scheme: "http" | "https" = "https") =>
  createPeerClient(peerFetch(tls), undefined, { scheme });

async function failure(p: Promise<unknown>): Promise<PeerError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PeerError);
    return e as PeerError;
  }
  throw new Error("the call succeeded");
}

describe("peer client over TLS", () => {
  const server = start(material("a", "cluster"));
  const mutual = start(material("a", "cluster", true));

  test("a peer whose certificate chains to --tls-ca answers", async () => {
    const h = await client(material("b", "cluster")).health(server, 2000);
    expect(h.status).toBe("UP");
  });

  test("a peer whose certificate comes from another CA is refused, marked as a TLS failure", async () => {
    const stranger = start(material("stranger", "other"));
    const e = await failure(client(material("b", "cluster")).health(stranger, 2000));
    expect(e.tlsSuspect).toBe(true);
    expect(e.message).toContain("(TLS:");
  });

  test("plain http to a TLS member fails, with the hint to configure TLS everywhere", async () => {
    const e = await failure(client(undefined, "http").health(server, 2000));
    expect(e.tlsSuspect).toBe(true);
    expect(e.message).toContain("every member needs --tls-cert");
  });

  test("https to a plain member fails, with the TLS hint", async () => {
    const port = freePort();
    servers.push(
      serve(() => Response.json({}), {
        host: "127.0.0.1",
        port,
        maxBodyBytes: 1024,
        idleTimeoutMs: 30_000,
      }),
    );
    const e = await failure(client(material("b", "cluster")).health(`127.0.0.1:${port}`, 2000));
    expect(e.tlsSuspect).toBe(true);
    expect(e.message).toContain("(TLS:");
  });

  test("mutual TLS: our certificate gets in; another CA's, or none, does not", async () => {
    expect((await client(material("b", "cluster")).health(mutual, 2000)).status).toBe("UP");
    const strangerAsClient = { ...material("stranger", "other"), ca: certs.pem("cluster-ca.crt") };
    await failure(client(strangerAsClient).health(mutual, 2000));
    const noCert = createPeerClient(
      (url, init) =>
        fetch(url, { ...init, tls: { ca: certs.pem("cluster-ca.crt") } } as RequestInit),
      undefined,
      { scheme: "https" },
    );
    await failure(noCert.health(mutual, 2000));
  });
});

describe("checkTlsPem", () => {
  const pem = (cert: string, key: string) => ({ cert: certs.pem(cert), key: certs.pem(key) });

  test("a matching certificate and key that name the host: fine", () => {
    expect(checkTlsPem(pem("a.crt", "a.key"), "127.0.0.1", Date.now())).toEqual({
      ok: true,
      warnings: [],
    });
  });

  test("a key of another certificate, or no PEM at all: the flag to blame", () => {
    expect(checkTlsPem(pem("a.crt", "b.key"), "127.0.0.1", Date.now())).toMatchObject({
      ok: false,
      flag: "--tls-key",
    });
    expect(checkTlsPem({ cert: "nope", key: "" }, "127.0.0.1", Date.now())).toMatchObject({
      ok: false,
      flag: "--tls-cert",
    });
    expect(
      checkTlsPem({ ...pem("a.crt", "a.key"), ca: "nope" }, "127.0.0.1", Date.now()),
    ).toMatchObject({ ok: false, flag: "--tls-ca" });
  });

  test("a certificate that does not name the advertised host, or has expired: warnings", () => {
    const r = checkTlsPem(pem("a.crt", "a.key"), "db1.example", Date.now() + 10 * 86_400_000);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.warnings[0]).toContain("does not name db1.example");
      expect(r.warnings[1]).toContain("expired");
    }
  });
});
