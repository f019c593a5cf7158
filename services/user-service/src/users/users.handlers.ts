import { eq } from "drizzle-orm";
import {
  documentedHeaders,
  ConflictError,
  NotFoundError,
  decodeCursor,
  enqueueEvents,
  idempotentWrite,
  isUniqueViolation,
  newestFirst,
  readIdempotencyKey,
  TRACEPARENT,
  toPage,
  traceHeaders,
  uuidv7,
  type Db,
  type OutboxMessage,
  type ServiceApp,
} from "@orderflow/shared";
import { users } from "../db/schema.js";
import { createRegisterBatcher } from "./register-batcher.js";
import { presentUser, registerUser } from "./users.domain.js";
import { getUserRoute, listUsersRoute, registerUserRoute } from "./users.routes.js";

export interface UsersDeps {
  db: Db;
  /** Hands the relay the outbox messages of a write that has committed. */
  published: (messages: OutboxMessage[]) => void;
}

export function registerUserRoutes(app: ServiceApp, { db, published }: UsersDeps) {
  const batcher = createRegisterBatcher({ db, published });
  app.openapi(documentedHeaders(app, registerUserRoute), async (c) => {
    const body = c.req.valid("json");
    const key = readIdempotencyKey(c);
    const now = new Date();
    const { user, event } = registerUser(body, { id: uuidv7(now.getTime()), now });
    const headers = traceHeaders(c.req.header(TRACEPARENT));
    if (key === undefined) {
      // The common case goes through group commit; a request with a key keeps the single path.
      if ((await batcher.register(user, event, headers)) === "duplicate") throw new ConflictError(`a user with email ${body.email} already exists`);
      return c.json(presentUser(user), 201, { location: `/users/${user.id}` });
    }
    let result;
    try {
      result = await idempotentWrite(db, { scope: "POST /users", key, request: body }, async (tx) => {
        await tx.insert(users).values(user);
        await enqueueEvents(tx, [{ subject: "users.registered", event, headers }]);
        return { status: 201, body: presentUser(user), headers: { location: `/users/${user.id}` } };
      });
    } catch (err) {
      if (isUniqueViolation(err, "users_email_lower_key")) {
        throw new ConflictError(`a user with email ${body.email} already exists`, { cause: err });
      }
      throw err;
    }
    published(result.queued);
    return c.json(result.body, 201, result.headers);
  });

  app.openapi(getUserRoute, async (c) => {
    const { id } = c.req.valid("param");
    const [user] = await db.select().from(users).where(eq(users.id, id));
    if (!user) throw new NotFoundError(`no user with id ${id}`);
    return c.json(presentUser(user), 200);
  });

  app.openapi(listUsersRoute, async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const page = newestFirst(users.createdAt, users.id, cursor ? decodeCursor("users", cursor) : undefined);
    const rows = await db.select().from(users).where(page.after).orderBy(...page.orderBy).limit(limit + 1);
    return c.json(toPage("users", rows, limit, presentUser), 200);
  });
}
