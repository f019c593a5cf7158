import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { operatorMode } from "../testing/nats-jwt.js";
import { createTestPki } from "../testing/tls.js";
import { ConfigError, NATS_CLIENT_VARIABLES, baseConfigSchema, loadConfig } from "./config.js";

describe("loadConfig", () => {
  it("applies defaults and coerces numbers and booleans", () => {
    const c = loadConfig(baseConfigSchema, { DATABASE_URL: "postgres://x/y", PORT: "4000", MIGRATE_ON_START: "false" });
    expect(c.PORT).toBe(4000);
    expect(c.MIGRATE_ON_START).toBe(false);
    expect(c.NATS_URL).toBe("nats://127.0.0.1:4222");
    expect(c.RETRY_DELAYS_MS).toEqual([1000, 5000, 30000]);
  });

  it("names every bad variable in one message", () => {
    const attempt = () => loadConfig(baseConfigSchema, { PORT: "abc", NATS_NAMESPACE: "a.b", DATABASE_URL: "mysql://x" });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (err) {
      const message = (err as ConfigError).message;
      expect(message).toMatch(/PORT/);
      expect(message).toMatch(/NATS_NAMESPACE/);
      expect(message).toMatch(/DATABASE_URL must start with postgres/);
    }
  });

  it("requires DATABASE_URL and treats empty strings as unset", () => {
    expect(() => loadConfig(baseConfigSchema, { DATABASE_URL: "" })).toThrow(/DATABASE_URL is required/);
    expect(loadConfig(baseConfigSchema, { DATABASE_URL: "pglite://memory", PORT: "" }).PORT).toBe(3000);
  });

  it("refuses values that could never work: non-decimal numbers, timers Node would fire at once, a max_age JetStream refuses, URLs that name nothing", () => {
    const base = { DATABASE_URL: "pglite://memory" };
    for (const [variable, bad] of [
      ["PORT", "0x9e"],
      ["PORT", " "],
      ["PORT", "1e3"],
      ["SHUTDOWN_TIMEOUT_MS", "3000000000"],
      ["OUTBOX_POLL_MS", "3000000000"],
      ["DATABASE_STATEMENT_TIMEOUT_MS", "3000000000"],
      ["RETRY_DELAYS_MS", "1000,3000000000"],
      ["STREAM_MAX_AGE_MS", "50"],
      ["STREAM_MAX_AGE_MS", "5000"],
      ["STREAM_MAX_AGE_MS", "10000000000000"],
      ["DLQ_MAX_AGE_MS", "5000"],
      ["DLQ_MAX_AGE_MS", "-1"],
      ["NATS_URL", "not a url"],
      ["NATS_URL", "nats://127.0.0.1:99999"],
      ["NATS_URL", "http://127.0.0.1:4222"],
      ["NATS_URL", "nats://a:4222,"],
      ["NATS_URL", "ws://127.0.0.1:8080"],
      ["NATS_URL", "nats://a:4222,wss://b:443"],
      ["DATABASE_URL", "postgres://"],
      ["DATABASE_URL", "postgres://root@127.0.0.1:5432"],
      ["DATABASE_URL", "pglite://"],
      ["DATABASE_URL", "postgres://u:p%ZZ@127.0.0.1/db"],
      ["DATABASE_URL", "postgres://u%E0:p@127.0.0.1/db"],
      ["DATABASE_URL", "postgres://u@h/db?sslmode=bogus"],
      ["DATABASE_URL", "postgres://u@h/db?sslmode=Require"],
      ["DATABASE_STATEMENT_TIMEOUT_MS", "2"],
      ["DATABASE_STATEMENT_TIMEOUT_MS", "99"],
    ] as const) {
      expect(() => loadConfig(baseConfigSchema, { ...base, [variable]: bad }), `${variable}=${bad}`).toThrow(new RegExp(variable));
    }
    for (const url of ["postgres://u@h/db?sslmode=disable", "postgres://u@h/db?application_name=x&sslmode=verify-ca", "postgres://u@db1:5432,db2:5432/db?target_session_attrs=read-write", "postgresql://app:secret@users-db-rw.orderflow:5432/users?sslmode=verify-full", "postgres://u@%2Fvar%2Frun%2Fpostgresql/db", "postgres://u@[::1]:5432/db"]) {
      expect(loadConfig(baseConfigSchema, { DATABASE_URL: url }).DATABASE_URL).toBe(url);
    }
    expect(() => loadConfig(baseConfigSchema, { DATABASE_URL: "pglite://" })).toThrow("DATABASE_URL pglite:// needs a directory (pglite://<dir>), or pglite://memory for a throwaway database");
    expect(() => loadConfig(baseConfigSchema, { DATABASE_URL: "postgres://u:p%ZZ@h/db" })).toThrow("DATABASE_URL has a malformed percent-escape in its user, password or host: write a literal % as %25");
    expect(loadConfig(baseConfigSchema, { DATABASE_URL: "postgres://u:p%25w@h/db" }).DATABASE_URL).toBe("postgres://u:p%25w@h/db");
    for (const ms of ["0", "100"]) expect(loadConfig(baseConfigSchema, { ...base, DATABASE_STATEMENT_TIMEOUT_MS: ms }).DATABASE_STATEMENT_TIMEOUT_MS).toBe(Number(ms));
    const ok = loadConfig(baseConfigSchema, { ...base, PORT: " 8080 ", STREAM_MAX_AGE_MS: "0", NATS_URL: "nats://a:4222, tls://b:4223,127.0.0.1:4224", DATABASE_URL: "postgres://u:p@h:5432/db" });
    expect([ok.PORT, ok.STREAM_MAX_AGE_MS, ok.NATS_URL]).toEqual([8080, 0, "nats://a:4222, tls://b:4223,127.0.0.1:4224"]);
    // Dead letters stay until replayed or purged unless told otherwise.
    expect(ok.DLQ_MAX_AGE_MS).toBe(0);
    expect(loadConfig(baseConfigSchema, { ...base, DLQ_MAX_AGE_MS: "2592000000" }).DLQ_MAX_AGE_MS).toBe(2592000000);
  });

  it("rejects malformed retry delays, empty entries included (Number('') would be a retry at once)", () => {
    for (const bad of ["1s,2s", "1000,,5000", " ", "1000,", "-5", "1.5"]) {
      expect(() => loadConfig(baseConfigSchema, { DATABASE_URL: "pglite://memory", RETRY_DELAYS_MS: bad }), bad).toThrow(/RETRY_DELAYS_MS must be a comma-separated list of milliseconds/);
    }
    expect(loadConfig(baseConfigSchema, { DATABASE_URL: "pglite://memory", RETRY_DELAYS_MS: " 0, 250 ,1000" }).RETRY_DELAYS_MS).toEqual([0, 250, 1000]);
  });

  it("takes the heap growing percent as a whole number from 0 (V8's own) to 1000, 150 by default", () => {
    expect(loadConfig(baseConfigSchema, { DATABASE_URL: "pglite://memory" }).HEAP_GROWING_PERCENT).toBe(150);
    expect(loadConfig(baseConfigSchema, { DATABASE_URL: "pglite://memory", HEAP_GROWING_PERCENT: "0" }).HEAP_GROWING_PERCENT).toBe(0);
    for (const bad of ["-1", "2.5", "lots", "1001"]) {
      expect(() => loadConfig(baseConfigSchema, { DATABASE_URL: "pglite://memory", HEAP_GROWING_PERCENT: bad })).toThrow(/HEAP_GROWING_PERCENT/);
    }
  });

  it("takes NATS_INBOX_PREFIX only as dot-separated subject tokens, without wildcards", () => {
    for (const good of ["orderflow_r.users", "_INBOX.alice@corp", "_INBOX:svc", `r.U${"A".repeat(55)}`]) {
      expect(loadConfig(baseConfigSchema, { DATABASE_URL: "pglite://memory", NATS_INBOX_PREFIX: good }).NATS_INBOX_PREFIX).toBe(good);
    }
    for (const bad of ["_INBOX.>", "a b", "a..b", ".a", "a.*"]) {
      expect(() => loadConfig(baseConfigSchema, { DATABASE_URL: "pglite://memory", NATS_INBOX_PREFIX: bad })).toThrow(/NATS_INBOX_PREFIX/);
    }
  });

  it("refuses a NATS_CREDS_FILE that is not a credentials file, rather than retrying the connection for ever", () => {
    const dir = mkdtempSync(join(tmpdir(), "of-creds-"));
    try {
      writeFileSync(join(dir, "hostname"), "some-host\n");
      writeFileSync(join(dir, "user.creds"), operatorMode().creds);
      const base = { DATABASE_URL: "pglite://memory" };
      expect(() => loadConfig(baseConfigSchema, { ...base, NATS_CREDS_FILE: join(dir, "hostname") })).toThrow("NATS_CREDS_FILE is not a NATS credentials file (a user JWT and an nkey seed, as nsc writes it)");
      expect(() => loadConfig(baseConfigSchema, { ...base, NATS_CREDS_FILE: join(dir, "missing") })).toThrow(/NATS_CREDS_FILE must be a readable credentials file$/m);
      expect(loadConfig(baseConfigSchema, { ...base, NATS_CREDS_FILE: join(dir, "user.creds") }).NATS_CREDS_FILE).toBe(join(dir, "user.creds"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("takes NATS TLS files only as PEM a TLS handshake can use: a pair that does not belong together is said at start", () => {
    const pki = createTestPki();
    onTestFinished(() => pki.dispose());
    writeFileSync(join(pki.dir, "hostname"), "some-host\n");
    const base = { DATABASE_URL: "pglite://memory" };
    const pair = { NATS_TLS_CERT_FILE: pki.client.certFile, NATS_TLS_KEY_FILE: pki.client.keyFile };
    const ok = loadConfig(baseConfigSchema, { ...base, ...pair, NATS_TLS_CA_FILE: pki.caFile });
    expect([ok.NATS_TLS_CA_FILE, ok.NATS_TLS_CERT_FILE, ok.NATS_TLS_KEY_FILE]).toEqual([pki.caFile, pki.client.certFile, pki.client.keyFile]);
    // The CLIs read the same variables, checks included.
    const cli = baseConfigSchema.pick(NATS_CLIENT_VARIABLES);
    expect(() => loadConfig(cli, { NATS_TLS_CERT_FILE: pki.client.certFile })).toThrow("invalid configuration: NATS_TLS_KEY_FILE is required with NATS_TLS_CERT_FILE (the client certificate's private key)");
    expect(() => loadConfig(cli, { NATS_TLS_KEY_FILE: pki.client.keyFile })).toThrow("invalid configuration: NATS_TLS_CERT_FILE is required with NATS_TLS_KEY_FILE (the certificate of that key)");
    expect(() => loadConfig(cli, { ...pair, NATS_TLS_KEY_FILE: pki.stranger.keyFile })).toThrow("NATS_TLS_KEY_FILE is not the private key of the certificate in NATS_TLS_CERT_FILE");
    expect(() => loadConfig(cli, { NATS_TLS_CA_FILE: join(pki.dir, "hostname") })).toThrow("NATS_TLS_CA_FILE is not a PEM certificate of the CA that signed the servers' certificates");
    expect(() => loadConfig(cli, { NATS_TLS_CA_FILE: join(pki.dir, "missing.pem") })).toThrow(/NATS_TLS_CA_FILE must be a readable file/);
    // A key where the certificate belongs, and the other way round.
    expect(() => loadConfig(cli, { NATS_TLS_CERT_FILE: pki.client.keyFile, NATS_TLS_KEY_FILE: pki.client.certFile })).toThrow(/NATS_TLS_CERT_FILE is not a PEM client certificate; NATS_TLS_KEY_FILE is not an unencrypted PEM private key/);
  });
});
