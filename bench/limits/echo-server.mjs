// The HTTP ceiling: a Hono route on @hono/node-server that parses the registration JSON and
// returns it, with no database or broker behind it. Prints its port once listening.
import { serve } from "@hono/node-server";
import { Hono } from "hono";

const app = new Hono();
app.post("/users", async (c) => c.json(await c.req.json(), 201));
serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) => process.stdout.write(`${info.port}\n`));
