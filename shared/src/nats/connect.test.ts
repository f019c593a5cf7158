import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, expect, it, onTestFinished } from "vitest";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { connectNats, natsClientOptions, timeoutCause } from "./connect.js";
import { createLogger } from "../logger/index.js";
import { waitFor } from "../testing/wait.js";
import { testNatsUrl } from "../testing/nats.js";
import { startOwnNatsServer } from "../testing/nats-server.js";
import { createTestPki, natsServerTls } from "../testing/tls.js";

describe("natsClientOptions", () => {
  it("requires TLS when NATS_URL names a tls:// server: a server without TLS is refused, not used in plain text", async () => {
    const plain = new URL(testNatsUrl()).host; // the test server offers no TLS
    expect(natsClientOptions({ NATS_URL: `nats://${plain}` }).tls).toBeUndefined();
    expect(natsClientOptions({ NATS_URL: `tls://${plain}` }).tls).toEqual({});
    await expect(connect({ ...natsClientOptions({ NATS_URL: `tls://${plain}` }), timeout: 5000 })).rejects.toThrow(/does not support 'tls'/);
    const nc = await connect({ ...natsClientOptions({ NATS_URL: `nats://${plain}` }), timeout: 5000 });
    await nc.close();
    // A CA or client certificate requires TLS as well, whatever the URL's scheme.
    await expect(connect({ ...natsClientOptions({ NATS_URL: `nats://${plain}`, NATS_TLS_CA_FILE: "/nowhere/ca.pem" }), timeout: 5000 })).rejects.toThrow(/does not support 'tls'/);
  });
});

describe("TLS with a private CA and client certificates", () => {
  const tlsServer = async (verifyClients: boolean, which: "server" | "misnamed" = "server") => {
    const pki = createTestPki();
    onTestFinished(() => pki.dispose());
    const server = await startOwnNatsServer({
      config: natsServerTls(pki, { verifyClients, server: pki[which] }),
    });
    onTestFinished(() => server.dispose()); // runs before the pki's: reverse order
    return { pki, server, url: `tls://127.0.0.1:${server.port}` };
  };
  const attempt = (config: Parameters<typeof natsClientOptions>[0]) => connect({ ...natsClientOptions(config), timeout: 5000, reconnect: false });

  it("trusts the servers' certificates by NATS_TLS_CA_FILE, and nothing else", async () => {
    const { pki, url } = await tlsServer(false);
    const nc = await attempt({ NATS_URL: url, NATS_TLS_CA_FILE: pki.caFile });
    expect(nc.info?.tls_required).toBe(true);
    await (await jetstreamManager(nc)).getAccountInfo(); // JetStream answers over it
    await nc.close();
    // Without the CA, the server's certificate is not trusted: refused, not used anyway.
    await expect(attempt({ NATS_URL: url })).rejects.toThrow(/self[- ]signed|unable to (verify|get local issuer)/i);
  });

  it("checks the server's certificate is for the address it dials (an IP here), not only that the CA signed it", async () => {
    const { pki, url } = await tlsServer(false, "misnamed");
    await expect(attempt({ NATS_URL: url, NATS_TLS_CA_FILE: pki.caFile })).rejects.toThrow(/altnames|does not match/i);
  });

  it("presents NATS_TLS_CERT_FILE to a server that verifies clients; one without a certificate, or with another CA's, is refused", async () => {
    const { pki, url } = await tlsServer(true);
    const nc = await attempt({ NATS_URL: url, NATS_TLS_CA_FILE: pki.caFile, NATS_TLS_CERT_FILE: pki.client.certFile, NATS_TLS_KEY_FILE: pki.client.keyFile });
    await (await jetstreamManager(nc)).getAccountInfo();
    await nc.close();
    await expect(attempt({ NATS_URL: url, NATS_TLS_CA_FILE: pki.caFile })).rejects.toThrow();
    // A reconnecting client (a service's, a CLI's) sees only "timeout" for that refusal: the
    // cause it logs is the handshake's own alert. Other errors need no second look.
    expect((await timeoutCause(new Error("timeout"), { NATS_URL: url, NATS_TLS_CA_FILE: pki.caFile })).cause).toMatch(/alert .*certificate|read ECONNRESET/i);
    expect(await timeoutCause(new Error("Authorization Violation"), { NATS_URL: url, NATS_TLS_CA_FILE: pki.caFile })).toEqual({});
    await expect(attempt({ NATS_URL: url, NATS_TLS_CA_FILE: pki.caFile, NATS_TLS_CERT_FILE: pki.stranger.certFile, NATS_TLS_KEY_FILE: pki.stranger.keyFile })).rejects.toThrow();
  });

  it("says why a lost connection stays lost: a client certificate the server refuses at a reconnect is logged, not only the disconnect", async () => {
    const { pki, server, url } = await tlsServer(true);
    // The service's certificate files, which a renewal rewrites in place.
    const certFile = join(pki.dir, "service.crt");
    const keyFile = join(pki.dir, "service.key");
    const install = (which: { certFile: string; keyFile: string }) => (copyFileSync(which.certFile, certFile), copyFileSync(which.keyFile, keyFile));
    install(pki.client);
    const lines: { level: number; msg: string; cause?: string }[] = [];
    const destination = new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) });
    const log = createLogger({ service: "connect-test", level: "debug", destination });
    const config = { NATS_URL: url, NATS_TLS_CA_FILE: pki.caFile, NATS_TLS_CERT_FILE: certFile, NATS_TLS_KEY_FILE: keyFile };
    const { nc, state } = await connectNats({ config, name: "connect-test", log, diagnoseAfterMs: { first: 100, every: 200 } });
    onTestFinished(() => nc.close());
    // A renewal from the wrong CA lands on disk, then the connection drops (a server restart).
    install(pki.stranger);
    await server.stop();
    await server.start();
    const said = await waitFor(() => lines.find((l) => l.msg === "nats still disconnected" && /certificate|ECONNRESET/i.test(l.cause ?? "")), { what: "the refusal logged", timeoutMs: 15_000 });
    expect(said.cause).toMatch(/alert .*certificate|(read|write) ECONNRESET/i);
    expect(state.connected()).toBe(false);
    // Asked again and again while it lasts, but warned once per cause (the refusal reads as the
    // alert or as the reset that overtook it, from one attempt to the next).
    const refusals = () => lines.filter((l) => l.msg === "nats still disconnected" && /certificate|ECONNRESET/i.test(l.cause ?? ""));
    await waitFor(() => refusals().length >= 5, { what: "the refusal found again", timeoutMs: 15_000 });
    const causes = new Set(refusals().map((l) => l.cause));
    for (const cause of causes) expect(refusals().filter((l) => l.cause === cause && l.level === 40), cause).toHaveLength(1);
    // The right certificate back: the client reconnects by itself.
    install(pki.client);
    await waitFor(() => state.connected(), { what: "the reconnect", timeoutMs: 15_000 });
    expect(lines.map((l) => l.msg)).toContain("nats reconnected");
  });
});
