import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { openDatabase } from "./database.js";
import { postgresTls } from "./tls.js";
import { baseConfigSchema, loadConfig } from "../config/config.js";
import { startOwnPostgres, type OwnPostgres } from "../testing/postgres-server.js";
import { createTestPki, type TestPki } from "../testing/tls.js";
import { waitFor } from "../testing/wait.js";

const migrations = fileURLToPath(new URL("../../../services/user-service/drizzle", import.meta.url));

describe("Postgres over TLS with libpq's sslrootcert, sslcert and sslkey", () => {
  let pki: TestPki;
  let pg: OwnPostgres;
  /** Serving the CA's certificate for another name than the 127.0.0.1 it is reached at. */
  let misnamed: OwnPostgres;
  // TLS only; the user "client" (the client certificate's CN) signs in with its certificate.
  const tlsPostgres = (server: { certFile: string; keyFile: string }) =>
    startOwnPostgres({
      settings: { ssl: "on", ssl_cert_file: "server.pem", ssl_key_file: "server.key", ssl_ca_file: "ca.pem" },
      files: { "server.pem": server.certFile, "server.key": server.keyFile, "ca.pem": pki.caFile },
      hba: "local all all trust\nhostssl all client 127.0.0.1/32 cert\nhostssl all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n",
    });
  beforeAll(async () => {
    pki = createTestPki();
    // Each that started is kept for afterAll, also when the other fails.
    const [a, b] = await Promise.allSettled([tlsPostgres(pki.server), tlsPostgres(pki.misnamed)]);
    if (a.status === "fulfilled") pg = a.value;
    if (b.status === "fulfilled") misnamed = b.value;
    for (const r of [a, b]) if (r.status === "rejected") throw r.reason;
    const setup = await openDatabase(pg.url("postgres", `sslmode=verify-full&sslrootcert=${pki.caFile}`), { poolSize: 1 });
    await setup.db.execute("create role client login");
    await setup.close();
  });
  afterAll(async () => {
    await Promise.all([pg?.dispose(), misnamed?.dispose()]);
    pki?.dispose();
  });

  async function session(url: string) {
    const database = await openDatabase(url, { poolSize: 1 });
    try {
      const [row] = (await database.db.execute("select current_user as who, (select ssl from pg_stat_ssl where pid = pg_backend_pid()) as ssl")) as unknown as { who: string; ssl: boolean }[];
      return row;
    } finally {
      await database.close();
    }
  }

  /** Why a session cannot start: the driver's error under drizzle's "Failed query". */
  async function refusal(url: string): Promise<string> {
    try {
      await session(url);
    } catch (err) {
      const messages: string[] = [];
      for (let e = err as { message?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) messages.push(String(e.message));
      return messages.join(" / ");
    }
    throw new Error(`${url} was not refused`);
  }

  it("verifies the server by sslrootcert, and migrates through the same TLS settings", async () => {
    const url = pg.url("postgres", `sslmode=verify-full&sslrootcert=${pki.caFile}&application_name=tlstest`);
    expect(await session(url)).toEqual({ who: "postgres", ssl: true });
    const database = await openDatabase(url, { poolSize: 1 });
    try {
      await database.migrate(migrations); // its own connection, holding the migration lock
    } finally {
      await database.close();
    }
    // Without the CA the server's certificate is not trusted.
    expect(await refusal(pg.url("postgres", "sslmode=verify-full"))).toMatch(/self[- ]signed|unable to (verify|get local issuer)/i);
    // A root certificate from elsewhere does not vouch for it either.
    expect(await refusal(pg.url("postgres", `sslmode=verify-ca&sslrootcert=${pki.stranger.certFile}`))).toMatch(/unable to (verify|get local issuer)|self[- ]signed/i);
  });

  it("checks the server's name (here an IP address) with verify-full, and only the chain with verify-ca or require", async () => {
    const ca = `sslrootcert=${pki.caFile}`;
    expect(await refusal(misnamed.url("postgres", `sslmode=verify-full&${ca}`))).toMatch(/altnames|does not match/i);
    expect(await session(misnamed.url("postgres", `sslmode=verify-ca&${ca}`))).toEqual({ who: "postgres", ssl: true });
    expect(await session(misnamed.url("postgres", `sslmode=require&${ca}`))).toEqual({ who: "postgres", ssl: true });
    // require with a root certificate does check the chain.
    expect(await refusal(pg.url("postgres", `sslmode=require&sslrootcert=${pki.stranger.certFile}`))).toMatch(/unable to (verify|get local issuer)|self[- ]signed/i);
  });

  it("signs in with a client certificate (sslcert, sslkey) where pg_hba.conf asks for one", async () => {
    expect(await session(pg.url("client", `sslmode=verify-full&sslrootcert=${pki.caFile}&sslcert=${pki.client.certFile}&sslkey=${pki.client.keyFile}`))).toEqual({ who: "client", ssl: true });
    expect(await refusal(pg.url("client", `sslmode=verify-full&sslrootcert=${pki.caFile}`))).toMatch(/requires a valid client certificate/);
    // sslmode=require with a root certificate verifies the chain, as libpq does.
    expect(await session(pg.url("client", `sslmode=require&sslrootcert=${pki.caFile}&sslcert=${pki.client.certFile}&sslkey=${pki.client.keyFile}`))).toEqual({ who: "client", ssl: true });
  });

  it("takes sslrootcert=system as verify-full with the default CAs (here NODE_EXTRA_CA_CERTS), not as a setting for the server", () => {
    // NODE_EXTRA_CA_CERTS is read when a process starts: a child with the test CA in it.
    const database = pathToFileURL(fileURLToPath(new URL("../../dist/db/database.js", import.meta.url))).href;
    const script = `const { openDatabase } = await import(${JSON.stringify(database)});
      for (const url of process.argv.slice(1)) {
        const db = await openDatabase(url, { poolSize: 1 });
        try { await db.ping(); console.log("ok"); } catch (err) { console.log("refused:", err.cause?.message ?? err.message); } finally { await db.close(); }
      }`;
    const run = (extraCa: string) =>
      execFileSync(process.execPath, ["--input-type=module", "-e", script, pg.url("postgres", "sslrootcert=system"), misnamed.url("postgres", "sslmode=verify-full&sslrootcert=system")], { env: { ...process.env, NODE_EXTRA_CA_CERTS: extraCa }, encoding: "utf8" });
    const [trusted, wrongName] = run(pki.caFile).trim().split("\n");
    expect(trusted).toBe("ok");
    expect(wrongName).toMatch(/^refused: .*(altnames|does not match)/i);
    expect(run(pki.stranger.certFile).trim().split("\n")[0]).toMatch(/^refused: .*(unable to (verify|get local issuer)|self[- ]signed)/i);
  });

  it("reads the files again for each new connection: a renewed client certificate is used without a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "of-pg-renew-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const install = (pair: { certFile: string; keyFile: string }) => {
      copyFileSync(pair.certFile, join(dir, "tls.crt"));
      copyFileSync(pair.keyFile, join(dir, "tls.key"));
    };
    install(pki.client);
    const database = await openDatabase(pg.url("client", `sslmode=verify-full&sslrootcert=${pki.caFile}&sslcert=${dir}/tls.crt&sslkey=${dir}/tls.key`), { poolSize: 1 });
    onTestFinished(() => database.close());
    const admin = await openDatabase(pg.url("postgres", `sslmode=verify-full&sslrootcert=${pki.caFile}`), { poolSize: 1 });
    onTestFinished(() => admin.close());
    // The serial of the certificate the pool's connection presented.
    const presented = async () => {
      const [row] = (await database.db.execute("select client_serial::text as serial from pg_stat_ssl where pid = pg_backend_pid()")) as unknown as { serial: string }[];
      return row!.serial;
    };
    const first = await presented();
    // The files renewed on disk; the connection then replaced (the pool's lifetime, a drop).
    install(pki.renewed);
    await admin.db.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = 'client'");
    const second = await waitFor(async () => presented().then((s) => (s !== first ? s : undefined), () => undefined), { what: "a new connection presenting the renewed certificate" });
    expect(BigInt(second).toString(16)).toBe(new X509Certificate(readFileSync(pki.renewed.certFile)).serialNumber.replace(/^0+/, "").toLowerCase());
  });

  it("strips the file parameters off the URL the driver gets, and leaves other URLs as they are", () => {
    expect(postgresTls("postgres://u@h:5432/db?sslmode=verify-full&application_name=x").url).toBe("postgres://u@h:5432/db?sslmode=verify-full&application_name=x");
    const { url, ssl } = postgresTls(`postgres://u@h:5432/db?sslmode=verify-ca&sslrootcert=${pki.caFile}&application_name=x`);
    expect(url).toBe("postgres://u@h:5432/db?application_name=x");
    expect(ssl?.ca).toBeDefined();
    expect(ssl?.checkServerIdentity?.("h", {} as never)).toBeUndefined(); // verify-ca: the chain, not the host name
  });

  it("refuses, at start, TLS files it cannot use and combinations libpq would not take", () => {
    const db = (query: string) => () => loadConfig(baseConfigSchema, { DATABASE_URL: `postgres://u@h:5432/db?${query}` });
    expect(db(`sslmode=verify-full&sslrootcert=${pki.caFile}&sslcert=${pki.client.certFile}&sslkey=${pki.client.keyFile}`)()).toBeDefined();
    expect(db(`sslrootcert=${pki.caFile}`)).toThrow("DATABASE_URL names sslrootcert, sslcert or sslkey: give sslmode=require, verify-ca or verify-full with them");
    expect(db(`sslmode=prefer&sslrootcert=${pki.caFile}`)).toThrow(/give sslmode=require, verify-ca or verify-full/);
    expect(db(`sslmode=verify-full&sslcert=${pki.client.certFile}`)).toThrow("DATABASE_URL has sslcert without sslkey, or sslkey without sslcert: a client certificate needs both");
    expect(db(`sslmode=verify-full&sslrootcert=${pki.dir}/missing.pem`)).toThrow("DATABASE_URL has sslrootcert, which is not a readable file holding a PEM certificate");
    expect(db(`sslmode=verify-full&sslcert=${pki.client.certFile}&sslkey=${pki.stranger.keyFile}`)).toThrow("DATABASE_URL has an sslkey that is not the private key of its sslcert");
    expect(db(`sslmode=verify-full&sslcert=${pki.client.keyFile}&sslkey=${pki.client.certFile}`)).toThrow(/sslcert, which is not a readable file holding a PEM certificate; DATABASE_URL has sslkey, which is not a readable file holding an unencrypted PEM private key/);
    // libpq's sslrootcert=system is not a file: verify-full with the default CAs.
    expect(db("sslrootcert=system")()).toBeDefined();
    expect(db("ssl=true&sslrootcert=")()).toBeDefined(); // postgres.js's own ssl; an empty value is none
    expect(db(`sslmode=require&sslrootcert=system&sslcert=${pki.client.certFile}&sslkey=${pki.client.keyFile}`)).toThrow("DATABASE_URL has sslrootcert=system with sslmode=require: the system's CAs go with sslmode=verify-full");
    // libpq's other TLS parameters would reach the server as settings and fail every connect.
    expect(db("sslmode=verify-full&sslpassword=x")).toThrow(/DATABASE_URL has sslpassword, which this client does not support/);
    // A DER certificate is no PEM: Node's TLS would ignore it as a CA.
    const der = join(pki.dir, "ca.der");
    execFileSync("openssl", ["x509", "-in", pki.caFile, "-outform", "DER", "-out", der]);
    expect(db(`sslmode=verify-full&sslrootcert=${der}`)).toThrow("DATABASE_URL has sslrootcert, which is not a readable file holding a PEM certificate");
    // A file name is decoded as libpq does (%XX only): a + stays a +.
    const plus = join(pki.dir, "ca+1.pem");
    copyFileSync(pki.caFile, plus);
    expect(db(`sslmode=verify-full&sslrootcert=${plus}`)().DATABASE_URL).toContain("ca+1.pem");
    expect(postgresTls(`postgres://u@h/db?sslmode=verify-full&sslrootcert=${plus}&application_name=a+b`).url).toBe("postgres://u@h/db?application_name=a+b");
  });
});
