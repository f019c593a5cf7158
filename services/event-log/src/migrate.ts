import { fileURLToPath } from "node:url";
import { runMigrateCommand } from "@orderflow/shared";

// Entry point for the Helm pre-install/pre-upgrade Job: applies migrations, then exits.
await runMigrateCommand("event-log", fileURLToPath(new URL("../drizzle", import.meta.url)), process.env);
