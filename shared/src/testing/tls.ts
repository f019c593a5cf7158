import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** PEM files of a throwaway CA and the certificates it signed, for servers and clients in tests. */
export interface TestPki {
  readonly dir: string;
  /** The CA's certificate: what a client trusts (NATS_TLS_CA_FILE), or a server checks clients by. */
  readonly caFile: string;
  /** For 127.0.0.1 only (an IP address, as tests connect to): not "localhost". */
  readonly server: { certFile: string; keyFile: string };
  /**
   * A server certificate from the same CA for "localhost" only: a client that checks the name it
   * dialled refuses it at 127.0.0.1 (postgres.js and nats.js checked "localhost" for an IP host).
   */
  readonly misnamed: { certFile: string; keyFile: string };
  /** A client certificate signed by the CA (CN "client"). */
  readonly client: { certFile: string; keyFile: string };
  /** Another one for the same client (CN "client", a key and serial of its own), as a renewal makes. */
  readonly renewed: { certFile: string; keyFile: string };
  /** A client certificate signed by another CA, which a server verifying by `caFile` refuses. */
  readonly stranger: { certFile: string; keyFile: string };
  /** Removes the files. */
  dispose(): void;
}

/**
 * Makes a CA, a server certificate and two client certificates with the openssl CLI (P-256 keys,
 * valid for a day), in a temp dir of their own.
 */
export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "of-pki-"));
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  const key = (name: string) => openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file(`${name}.key`));
  const ca = (name: string) => {
    key(name);
    openssl("req", "-x509", "-new", "-key", file(`${name}.key`), "-out", file(`${name}.pem`), "-days", "1", "-subj", `/CN=orderflow test ${name}`);
  };
  const signed = (name: string, by: string, extensions: string, cn = name) => {
    key(name);
    openssl("req", "-new", "-key", file(`${name}.key`), "-out", file(`${name}.csr`), "-subj", `/CN=${cn}`);
    writeFileSync(file(`${name}.ext`), extensions);
    openssl("x509", "-req", "-in", file(`${name}.csr`), "-CA", file(`${by}.pem`), "-CAkey", file(`${by}.key`), "-CAcreateserial", "-out", file(`${name}.pem`), "-days", "1", "-extfile", file(`${name}.ext`));
  };
  try {
    ca("ca");
    ca("other-ca");
    signed("server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    signed("misnamed", "ca", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n");
    signed("client", "ca", "extendedKeyUsage=clientAuth\n");
    signed("renewed", "ca", "extendedKeyUsage=clientAuth\n", "client");
    signed("stranger", "other-ca", "extendedKeyUsage=clientAuth\n");
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const pair = (name: string) => ({ certFile: file(`${name}.pem`), keyFile: file(`${name}.key`) });
  return {
    dir,
    caFile: file("ca.pem"),
    server: pair("server"),
    misnamed: pair("misnamed"),
    client: pair("client"),
    renewed: pair("renewed"),
    stranger: pair("stranger"),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * A nats-server `tls {}` block serving `server` (the PKI's IP certificate unless told), trusting
 * the PKI's CA for clients, and requiring a client certificate when `verifyClients`.
 */
export function natsServerTls(pki: TestPki, { verifyClients, server = pki.server }: { verifyClients: boolean; server?: { certFile: string; keyFile: string } }): string {
  return `tls { cert_file: ${JSON.stringify(server.certFile)}, key_file: ${JSON.stringify(server.keyFile)}, ca_file: ${JSON.stringify(pki.caFile)}, verify: ${verifyClients} }`;
}
