import { createEvent, uuidv7 } from "@orderflow/shared";

/** A registration body with an email no other request of any run uses. */
export function registrationBody(i: number, run: string): string {
  return JSON.stringify({ email: `b${run}-${i}@example.com`, name: "Bench User" });
}

/** The bytes user-service publishes for one registration: a users.registered CloudEvent. */
export function registeredEventPayload(i: number, run: string): string {
  const id = uuidv7();
  const now = new Date();
  return JSON.stringify(
    createEvent({
      name: "users.registered",
      source: "/orderflow/user-service",
      subject: id,
      time: now,
      data: { userId: id, email: `b${run}-${i}@example.com`, name: "Bench User", registeredAt: now.toISOString() },
    }),
  );
}
