import type { JetStreamClient } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { createEvent } from "../events/create.js";
import type { ServiceLifecycle } from "../events/catalog.js";
import type { Names } from "../nats/names.js";

export type LifecycleEvent = "system.service.started" | "system.service.ready" | "system.service.not_ready" | "system.service.stopping";

export interface SystemEventPublisher {
  publish(name: LifecycleEvent, extra?: Pick<ServiceLifecycle, "checks" | "reason">): Promise<void>;
}

/**
 * Publishes lifecycle events straight to the SYSTEM stream. They describe the process, not
 * database state, so they skip the outbox: when NATS is unreachable they are logged and dropped,
 * never retried forever or allowed to delay a shutdown.
 */
export function createSystemEvents(opts: { js: () => JetStreamClient | undefined; names: Names; log: Logger; service: string; instance: string; version: string }): SystemEventPublisher {
  return {
    async publish(name, extra = {}) {
      const js = opts.js();
      if (!js) return;
      const event = createEvent({
        name,
        source: `/orderflow/${opts.service}`,
        subject: `${opts.service}/${opts.instance}`,
        data: { service: opts.service, instance: opts.instance, version: opts.version, ...extra },
      });
      try {
        await js.publish(opts.names.subject(name), JSON.stringify(event), { msgID: event.id, timeout: 2000 });
      } catch (err) {
        opts.log.debug({ err: (err as Error).message, event: name }, "system event not published");
      }
    },
  };
}
