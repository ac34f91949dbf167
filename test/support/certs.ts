/**
 * Certificates for TLS tests, made with openssl at run time in a temporary directory (private
 * keys are never committed): self-signed CAs, and certificates for 127.0.0.1 (subjectAltName
 * IP:127.0.0.1, usable as server and client certificates) signed by one of them.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * ECDSA P-256 keys: a handshake costs a fraction of an RSA-2048 one, which matters when a
 * starting member opens dozens of peer connections at once under the local preset's 50 ms probe
 * timeout (with RSA-2048 and mutual TLS, start-up handshakes blocked members long enough to make
 * them suspect each other).
 */
const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

export class CertDir {
  readonly dir = mkdtempSync(join(tmpdir(), "dkv-certs-"));

  /** The path of a file in the directory. */
  file(name: string): string {
    return join(this.dir, name);
  }

  /** A file's text (PEM). */
  pem(name: string): string {
    return readFileSync(this.file(name), "utf8");
  }

  #openssl(...args: string[]): void {
    execFileSync("openssl", args, { cwd: this.dir, stdio: ["ignore", "ignore", "pipe"] });
  }

  /** A self-signed CA: `name`-ca.crt and `name`-ca.key. */
  ca(name: string): this {
    this.#openssl(
      ...["req", "-x509", ...EC_KEY, "-nodes", "-days", "2"],
      ...["-keyout", `${name}-ca.key`, "-out", `${name}-ca.crt`, "-subj", `/CN=dkv test ${name}`],
    );
    return this;
  }

  /** `name`.crt and `name`.key for 127.0.0.1, signed by CA `ca`, for server and client use. */
  cert(name: string, ca: string): this {
    this.#openssl(
      ...["req", ...EC_KEY, "-nodes", "-keyout", `${name}.key`],
      ...["-out", `${name}.csr`, "-subj", `/CN=${name}`],
    );
    writeFileSync(
      this.file(`${name}.ext`),
      "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
    );
    this.#openssl(
      ...["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}-ca.crt`, "-CAkey", `${ca}-ca.key`],
      ...["-CAcreateserial", "-out", `${name}.crt`, "-days", "2", "-extfile", `${name}.ext`],
    );
    return this;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
