import type { ConsumerInfo, JetStreamManager, MsgRequest } from "@nats-io/jetstream";

/**
 * Seconds since the oldest message past a durable consumer's ack floor was stored: the oldest
 * event it may not have applied yet (one acked out of order above the floor still counts, as the
 * floor does). 0 when it has nothing pending or unacknowledged. Held events expire with their
 * stream's max_age, so this is the figure to alert on before they do. Undefined when the stream
 * cannot be asked.
 */
export async function oldestUnackedAgeSeconds(jsm: JetStreamManager, info: ConsumerInfo, now = Date.now()): Promise<number | undefined> {
  if (info.num_pending === 0 && info.num_ack_pending === 0) return 0;
  // The first message after the floor that this consumer takes; an expired one is skipped, so it
  // is the oldest that can still expire. STREAM.MSG.GET takes `next_by_subj` since nats-server
  // 2.9; nats.js types it for the direct get only, which needs allow_direct on the stream.
  const query = { seq: info.ack_floor.stream_seq + 1, next_by_subj: info.config.filter_subject ?? ">" } as MsgRequest;
  const oldest = await jsm.streams.getMessage(info.stream_name, query).catch(() => undefined);
  if (oldest === undefined) return undefined;
  return oldest ? Math.max(0, (now - oldest.time.getTime()) / 1000) : 0;
}
