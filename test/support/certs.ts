/**
 * Certificates for TLS tests, made with openssl at run time in a temporary directory (private
 * keys are never committed): self-signed CAs, and certificates for 127.0.0.1 (subjectAltName
 * IP:127.0.0.1, usable as server and client certificates) signed by one of them.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"],
      ...["-keyout", `${name}-ca.key`, "-out", `${name}-ca.crt`, "-subj", `/CN=dkv test ${name}`],
    );
    return this;
  }

  /** `name`.crt and `name`.key for 127.0.0.1, signed by CA `ca`, for server and client use. */
  cert(name: string, ca: string): this {
    this.#openssl(
      ...["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`],
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
