import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { repoPath } from "./repo.js";

/** The chart's `services:` map, the one list of what it deploys: a new entry there is tested too. */
const services = (parse(readFileSync(repoPath("helm/orderflow/values.yaml"), "utf8")) as { services: Record<string, { database: { name: string } }> }).services;

export const SERVICES = Object.keys(services);
/** Each service's database name under the bundled Postgres. */
export const DATABASES: Record<string, string> = Object.fromEntries(Object.entries(services).map(([name, s]) => [name, s.database.name]));
