import type { StreamName } from "../events/catalog.js";

/**
 * Maps logical names to namespaced ones so that test runs and environments can share one
 * server: with namespace "t1", stream USERS is "t1_USERS", subject users.registered is
 * "t1.users.registered" and durable order-service is "t1_order-service".
 */
export interface Names {
  readonly namespace: string;
  stream(name: StreamName | string): string;
  subject(logical: string): string;
  /** Strips the namespace from a concrete subject; returns it unchanged when not prefixed. */
  logicalSubject(subject: string): string;
  durable(name: string): string;
}

export function createNames(namespace = ""): Names {
  const prefix = namespace ? `${namespace}.` : "";
  return {
    namespace,
    stream: (name) => (namespace ? `${namespace}_${name}` : name),
    subject: (logical) => `${prefix}${logical}`,
    logicalSubject: (subject) => (prefix && subject.startsWith(prefix) ? subject.slice(prefix.length) : subject),
    durable: (name) => (namespace ? `${namespace}_${name}` : name),
  };
}
