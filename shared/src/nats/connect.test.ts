import { describe, expect, it } from "vitest";
import { connect } from "@nats-io/transport-node";
import { natsClientOptions } from "./connect.js";
import { testNatsUrl } from "../testing/nats.js";

describe("natsClientOptions", () => {
  it("requires TLS when NATS_URL names a tls:// server: a server without TLS is refused, not used in plain text", async () => {
    const plain = new URL(testNatsUrl()).host; // the test server offers no TLS
    expect(natsClientOptions({ NATS_URL: `nats://${plain}` }).tls).toBeUndefined();
    expect(natsClientOptions({ NATS_URL: `tls://${plain}` }).tls).toEqual({});
    await expect(connect({ ...natsClientOptions({ NATS_URL: `tls://${plain}` }), timeout: 5000 })).rejects.toThrow(/does not support 'tls'/);
    const nc = await connect({ ...natsClientOptions({ NATS_URL: `nats://${plain}` }), timeout: 5000 });
    await nc.close();
  });
});
