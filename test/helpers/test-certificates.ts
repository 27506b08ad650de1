/**
 * A throwaway certificate authority and server certificates for TLS tests, made with the openssl
 * command line (Debian's `openssl` package, on every CI machine; Node's crypto makes keys but not
 * X.509 certificates, and this avoids a dependency for tests alone). Test-only: the keys are
 * unencrypted and the CA lives in a temporary folder.
 *
 * Trusting the CA: a Node child process takes `NODE_EXTRA_CA_CERTS=<caCertPath>`; the JS Azure client
 * `tlsOptions: { ca }`; Python's requests-based clients (azure-core) `REQUESTS_CA_BUNDLE=<caCertPath>`,
 * httpx-based ones (openai) `SSL_CERT_FILE=<caCertPath>`.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCertificateAuthority {
  /** The folder holding every file made here. */
  dir: string;
  /** The CA certificate (PEM) clients must trust. */
  caCertPath: string;
  /** The CA's private key (PEM). */
  caKeyPath: string;
}

export interface TestServerCertificate {
  /** Certificate (PEM) for 127.0.0.1, ::1 and localhost, signed by the CA. */
  certPath: string;
  /** Its private key (PEM). */
  keyPath: string;
  /** The certificate's subject common name (distinguishes certificates issued by the same CA). */
  commonName: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/** Makes a CA (EC P-256, valid one day) in a new temporary folder (or `dir`). */
export function createTestCertificateAuthority(dir: string = mkdtempSync(join(tmpdir(), "phiserve-tls-"))): TestCertificateAuthority {
  const caKeyPath = join(dir, "ca.key");
  const caCertPath = join(dir, "ca.pem");
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", caKeyPath], dir);
  openssl(
    ["req", "-x509", "-new", "-key", caKeyPath, "-sha256", "-days", "1", "-subj", "/CN=phiserve test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", caCertPath],
    dir,
  );
  return { dir, caCertPath, caKeyPath };
}

/**
 * Issues a server certificate from `ca` into `<ca.dir>/<name>.pem` and `<name>.key` (overwritten if
 * present; pass other paths to write elsewhere). Each call makes a new key.
 */
export function issueTestServerCertificate(ca: TestCertificateAuthority, name: string, paths: { certPath?: string; keyPath?: string } = {}): TestServerCertificate {
  const keyPath = paths.keyPath ?? join(ca.dir, `${name}.key`);
  const certPath = paths.certPath ?? join(ca.dir, `${name}.pem`);
  const csrPath = join(ca.dir, `${name}.csr`);
  const extPath = join(ca.dir, `${name}.ext`);
  const commonName = `phiserve test server ${name}`;
  writeFileSync(extPath, "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n");
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", keyPath], ca.dir);
  openssl(["req", "-new", "-key", keyPath, "-subj", `/CN=${commonName}`, "-out", csrPath], ca.dir);
  openssl(["x509", "-req", "-in", csrPath, "-CA", ca.caCertPath, "-CAkey", ca.caKeyPath, "-CAcreateserial", "-days", "1", "-sha256", "-extfile", extPath, "-out", certPath], ca.dir);
  return { certPath, keyPath, commonName };
}
