import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import postgres from "postgres";
import { createTestDatabase } from "@orderflow/shared/testing";
import { machineBusySeconds } from "../cpu.js";

const run = promisify(execFile);

export interface PostgresLimit {
  commitsPerSec: number;
  clients: number;
  tool: "pgbench" | "postgres.js";
  /** The whole machine's CPU (every process, /proc/stat) per commit while it was measured. */
  cpuUsPerCommit: number;
  /** Cores kept busy meanwhile, of the machine's; near all of them, the commit rate is a CPU limit. */
  coresBusy: number;
}

// A row shaped like a registration: a uuid key and an email, one autocommitted insert each.
const TABLE = "create table bench_insert (id uuid primary key, email text not null, created_at timestamptz not null default now())";
const INSERT = "insert into bench_insert (id, email) values (gen_random_uuid(), 'u' || random()::text || '@example.com')";

/** Single-row insert commits/s with `clients` concurrent clients, in a throwaway database. */
export async function measurePostgres({ seconds, clients = 8 }: { seconds: number; clients?: number }): Promise<PostgresLimit> {
  const db = await createTestDatabase("of_bench_pg");
  try {
    const sql = postgres(db.url, { max: clients, onnotice: () => {} });
    try {
      await sql.unsafe(TABLE);
      const busy0 = machineBusySeconds();
      const t0 = performance.now();
      const costs = (commits: number) => {
        const busy = machineBusySeconds() - busy0;
        return { cpuUsPerCommit: (busy * 1e6) / commits, coresBusy: busy / ((performance.now() - t0) / 1000) };
      };
      if (existsSync("/usr/bin/pgbench")) {
        const dir = mkdtempSync(join(tmpdir(), "of-pgbench-"));
        try {
          const script = join(dir, "insert.sql");
          writeFileSync(script, `${INSERT};\n`);
          const { stdout } = await run("/usr/bin/pgbench", ["-n", "-c", String(clients), "-j", "2", "-T", String(Math.max(1, Math.round(seconds))), "-f", script, db.url]);
          const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
          const processed = /number of transactions actually processed: (\d+)/.exec(stdout);
          if (!tps || !processed) throw new Error(`cannot read pgbench output:\n${stdout}`);
          return { commitsPerSec: Number(tps[1]), clients, tool: "pgbench", ...costs(Number(processed[1])) };
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
      // Same work through postgres.js: `clients` loops, each awaiting its own autocommit insert.
      const deadline = Date.now() + seconds * 1000;
      let done = 0;
      const started = Date.now();
      await Promise.all(
        Array.from({ length: clients }, async () => {
          while (Date.now() < deadline) {
            await sql.unsafe(INSERT);
            done += 1;
          }
        }),
      );
      return { commitsPerSec: done / ((Date.now() - started) / 1000), clients, tool: "postgres.js", ...costs(done) };
    } finally {
      await sql.end({ timeout: 5 });
    }
  } finally {
    await db.drop();
  }
}
