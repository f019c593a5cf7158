import type { ConsumerInfo, JetStreamManager, MsgRequest, StoredMsg } from "@nats-io/jetstream";

/**
 * The oldest message past a durable consumer's ack floor: the oldest event it may not have
 * applied yet (one acked out of order above the floor still counts, as the floor does). `null`
 * when it has nothing pending or unacknowledged; `undefined` when the stream cannot be asked.
 */
export async function oldestUnacked(jsm: JetStreamManager, info: ConsumerInfo): Promise<StoredMsg | null | undefined> {
  if (info.num_pending === 0 && info.num_ack_pending === 0) return null;
  // The first message after the floor that this consumer takes; an expired one is skipped, so it
  // is the oldest that can still expire. STREAM.MSG.GET takes `next_by_subj` since nats-server
  // 2.9; nats.js types it for the direct get only, which needs allow_direct on the stream. A
  // consumer of several subjects (filter_subjects, 2.10+) asks for each and takes the oldest.
  // (2.9's subject index can step over a message after deletes out of order; event streams lose
  // messages only from the front, to max_age, unless someone deletes them by hand.)
  const filters = info.config.filter_subject ? [info.config.filter_subject] : info.config.filter_subjects?.length ? info.config.filter_subjects : [">"];
  const seq = info.ack_floor.stream_seq + 1;
  const firsts = await Promise.all(
    filters.map((subject) => jsm.streams.getMessage(info.stream_name, { seq, next_by_subj: subject } as MsgRequest).catch(() => undefined)),
  );
  if (firsts.includes(undefined)) return undefined;
  return firsts.reduce<StoredMsg | null>((oldest, m) => (m && (!oldest || m.seq < oldest.seq) ? m : oldest), null);
}

/**
 * Seconds since the oldest unacked message (above) was stored; 0 when there is none. Held events
 * expire with their stream's max_age, so this is the figure to alert on before they do.
 */
export async function oldestUnackedAgeSeconds(jsm: JetStreamManager, info: ConsumerInfo, now = Date.now()): Promise<number | undefined> {
  const oldest = await oldestUnacked(jsm, info);
  if (oldest === undefined) return undefined;
  return oldest ? Math.max(0, (now - oldest.time.getTime()) / 1000) : 0;
}
