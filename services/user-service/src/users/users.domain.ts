import { createEvent, type CloudEvent, type UserRegistered } from "@orderflow/shared";
import type { UserRow } from "../db/schema.js";

export const SOURCE = "/orderflow/user-service";

export interface Registration {
  email: string;
  name: string;
}

/**
 * Decides what a registration produces: the new user and its users.registered event.
 * Pure: the clock and the id come from the caller, so it is tested without I/O.
 */
export function registerUser(input: Registration, { id, now }: { id: string; now: Date }): { user: UserRow; event: CloudEvent<UserRegistered> } {
  const user: UserRow = { id, email: input.email, name: input.name, orderCount: 0, createdAt: now };
  const event = createEvent({
    name: "users.registered",
    source: SOURCE,
    subject: id,
    time: now,
    data: { userId: id, email: input.email, name: input.name, registeredAt: now.toISOString() },
  });
  return { user, event };
}

export function presentUser(u: UserRow) {
  return { id: u.id, email: u.email, name: u.name, orderCount: u.orderCount, createdAt: u.createdAt.toISOString() };
}
