/**
 * The PEM files of --tls-cert, --tls-key and --tls-ca, checked before the server starts so that a
 * wrong file is one line naming the flag (exit 2), not a runtime's TLS error later: the
 * certificate and the CA parse as X.509, the key parses, and the key belongs to the certificate.
 * Reading the files is the caller's (src/platform/); the checks use node:crypto (Bun and Deno).
 */
import { createPrivateKey, X509Certificate } from "node:crypto";

/** Largest PEM file read (a certificate chain or a CA bundle is a few KiB). */
export const TLS_FILE_BYTES_MAX = 1024 * 1024;

export interface TlsPem {
  readonly cert: string;
  readonly key: string;
  readonly ca?: string;
}

export type TlsCheck =
  | { readonly ok: true; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly flag: string; readonly message: string };

/**
 * Check the PEM texts. `advertiseHost` is the host peers dial: a certificate that does not name
 * it (subjectAltName IP or DNS) is refused by every peer's verification, which is worth a warning.
 * `nowMs` tells an expired certificate (also a warning: the operator may be about to replace it).
 */
export function checkTlsPem(pem: TlsPem, advertiseHost: string, nowMs: number): TlsCheck {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem.cert);
  } catch {
    return { ok: false, flag: "--tls-cert", message: "not a PEM certificate" };
  }
  try {
    if (!cert.checkPrivateKey(createPrivateKey(pem.key))) {
      return {
        ok: false,
        flag: "--tls-key",
        message: "does not belong to the certificate in --tls-cert",
      };
    }
  } catch {
    return { ok: false, flag: "--tls-key", message: "not a PEM private key" };
  }
  if (pem.ca !== undefined) {
    try {
      new X509Certificate(pem.ca);
    } catch {
      return { ok: false, flag: "--tls-ca", message: "not a PEM certificate" };
    }
  }
  const warnings: string[] = [];
  const host = advertiseHost.replace(/^\[(.*)\]$/, "$1");
  const named = /^[\d.]+$/.test(host) || host.includes(":")
    ? cert.checkIP(host) !== undefined
    : cert.checkHost(host) !== undefined;
  if (!named) {
    warnings.push(
      `the certificate does not name ${host} (subjectAltName): peers dialing it will refuse it`,
    );
  }
  if (Date.parse(cert.validTo) < nowMs) warnings.push(`the certificate expired on ${cert.validTo}`);
  return { ok: true, warnings };
}
