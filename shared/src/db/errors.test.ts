import { describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { openDatabase } from "./database.js";
import { isTransientDbError, isUniqueViolation, reportableError } from "./errors.js";

describe("database errors", () => {
  it("reports the driver's reason and SQLSTATE, never the query parameters", async () => {
    const database = await openDatabase("pglite://memory");
    try {
      await database.db.execute(sql`create table t (email text primary key)`);
      await database.db.execute(sql`insert into t values (${"secret@example.com"})`);
      const err = await database.db.execute(sql`insert into t values (${"secret@example.com"})`).catch((e: unknown) => e);
      expect(isUniqueViolation(err)).toBe(true);
      expect(isTransientDbError(err)).toBe(false);
      const reported = reportableError(err);
      expect(reported.message).toMatch(/^23505: duplicate key value/);
      expect(reported.message).not.toContain("secret@example.com");
      expect(reported.name).not.toBe("Error");
    } finally {
      await database.close();
    }
  });

  it("leaves errors that are not query failures alone", () => {
    const plain = new TypeError("boom");
    expect(reportableError(plain)).toBe(plain);
    expect(reportableError("text").message).toBe("text");
  });
});
