import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { readProcStats } from "../proc.js";

export interface RoundTripLimit {
  roundTrips: number;
  /** Wall time of one message there and back between two Node processes over loopback TCP. */
  latencyUs: number;
  /** CPU of both processes (user + system) per round trip: two wake-ups, two reads, two writes. */
  cpuUs: number;
}

/**
 * The cost of one hop between processes, which every stage of the pipeline pays (HTTP, each
 * statement, each publish, ack and delivery): a one-byte ping-pong with a child process for
 * `seconds`, one message in flight, so each side sleeps until the other answers.
 */
export async function measureRoundTrip({ seconds }: { seconds: number }): Promise<RoundTripLimit> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const script = fileURLToPath(new URL("./echo-socket.mjs", import.meta.url));
  const child = spawn(process.execPath, [script, String((server.address() as AddressInfo).port)], { stdio: "ignore" });
  try {
    const exited = once(child, "exit").then(() => Promise.reject(new Error("the round-trip echo process exited before connecting")));
    const failed = once(child, "error").then(([err]) => Promise.reject(err as Error));
    const [socket] = (await Promise.race([once(server, "connection"), exited, failed])) as [Socket];
    exited.catch(() => {});
    failed.catch(() => {});
    socket.setNoDelay(true);
    const ping = Buffer.from("x");
    const pingPong = (until: number) =>
      new Promise<number>((resolve) => {
        let n = 0;
        const onData = () => {
          n += 1;
          if (performance.now() < until) socket.write(ping);
          else {
            socket.off("data", onData);
            resolve(n);
          }
        };
        socket.on("data", onData);
        socket.write(ping);
      });
    await pingPong(performance.now() + 200); // warm-up
    const child0 = readProcStats(child.pid!)?.cpuSeconds ?? NaN;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const roundTrips = await pingPong(t0 + seconds * 1000);
    const wallMs = performance.now() - t0;
    const own = process.cpuUsage(cpu0);
    const childCpuUs = ((readProcStats(child.pid!)?.cpuSeconds ?? NaN) - child0) * 1e6;
    return { roundTrips, latencyUs: (wallMs * 1000) / roundTrips, cpuUs: (own.user + own.system + childCpuUs) / roundTrips };
  } finally {
    child.kill("SIGKILL");
    server.close();
  }
}
