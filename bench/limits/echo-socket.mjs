// The other end of the round-trip limit: connects to the port it is given and writes back
// whatever it reads, with Nagle off as every orderflow connection has it.
import { connect } from "node:net";

const socket = connect(Number(process.argv[2]), "127.0.0.1");
socket.setNoDelay(true);
socket.on("data", (chunk) => socket.write(chunk));
socket.on("error", () => process.exit(0));
socket.on("close", () => process.exit(0));
