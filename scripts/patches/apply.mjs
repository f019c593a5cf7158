// Applied by `postinstall` (also inside the image build): small, idempotent fixes to
// dependencies that have no fixed release yet. Each patch names its upstream issue, checks
// that the code it changes is still there, and fails the install loudly when it is not, so a
// dependency upgrade cannot silently drop a fix.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

const patches = [
  {
    // postgres@3.4.x: when a connection closes while a query is still being written (a
    // database outage under load), a deferred write reaches nextWrite() after `socket` was set to
    // null and throws an uncaught TypeError that kills the process (porsager/postgres#1154, #1208).
    // Guard: with no socket there is nothing to write; closed() already failed the pending queries.
    name: "postgres: nextWrite on a closed connection",
    package: "postgres",
    files: ["src/connection.js", "cjs/src/connection.js"],
    find: "  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)",
    replace:
      "  function nextWrite(fn) {\n    if (!socket) { chunk = null; nextWriteTimer !== null && clearImmediate(nextWriteTimer); nextWriteTimer = null; return false } // orderflow patch\n    const x = socket.write(chunk, fn)",
  },
  {
    // postgres@3.4.x leaves Nagle's algorithm on for its connections (libpq, pgjdbc and npgsql
    // all set TCP_NODELAY). With queries pipelined on a connection, a small write can then wait
    // for the ACK of the previous one, which the server may delay: at 1,000 registrations/s the
    // end-to-end p99 measured 18–29 ms with it and 16–22 ms without. Node applies the flag when
    // the socket connects.
    name: "postgres: TCP_NODELAY on its sockets",
    package: "postgres",
    files: ["src/connection.js", "cjs/src/connection.js"],
    find: "        : new net.Socket()\n",
    replace: "        : new net.Socket().setNoDelay(true) // orderflow patch: no Nagle delays\n",
  },
  {
    // @nats-io/nats-core@3.4.x: every answered request (each JetStream publish ack) ends in
    // cancel(), which builds `new RequestError("cancelled")` to reject a promise that has just
    // been settled: an Error with a captured stack per publish, ~5% of a service's CPU under
    // load, whatever noAsyncTraces says. After an answer only the subscription needs removing.
    name: "nats-core: no throwaway error per answered request",
    package: "@nats-io/nats-core",
    files: ["lib/request.js"],
    find: "            this.deferred.resolve(msg);\n        }\n        this.cancel();\n    }\n    cancel(err) {",
    replace: "            this.deferred.resolve(msg);\n        }\n        this.mux.cancel(this); // orderflow patch: settled already, nothing to reject\n    }\n    cancel(err) {",
  },
  {
    // postgres@3.4.x and @nats-io/transport-node@3.4.x start TLS on a socket they connected
    // themselves and name the server only through SNI, which an IP address cannot carry. Node
    // then checks the certificate against `host`, which neither passes, so against "localhost":
    // with sslmode=verify-full (or a tls:// NATS) at 10.0.0.5, a certificate the CA issued for
    // "localhost" passed and one issued for 10.0.0.5 failed. Passing the host they connected to
    // checks the name the URL gave (SNI still goes only to a DNS name).
    name: "postgres: verify the certificate of an IP host against that IP",
    package: "postgres",
    files: ["src/connection.js", "cjs/src/connection.js"],
    find: "      servername: net.isIP(socket.host) ? undefined : socket.host\n    }\n",
    replace: "      servername: net.isIP(socket.host) ? undefined : socket.host,\n      host: socket.host // orderflow patch: the name checked for an IP host\n    }\n",
  },
  {
    name: "transport-node: remember the host it dials, for the certificate check",
    package: "@nats-io/transport-node",
    files: ["lib/node_transport.js"],
    find: "        this.tlsName = hp.tlsName;\n",
    replace: "        this.tlsName = hp.tlsName;\n        this.tlsHost = hp.hostname; // orderflow patch: the name checked for an IP host\n",
  },
  {
    name: "transport-node: verify the certificate of an IP host against that IP",
    package: "@nats-io/transport-node",
    files: ["lib/node_transport.js"],
    find: "            socket: this.socket,\n            servername: this.tlsName,\n            rejectUnauthorized: true,\n",
    replace: "            socket: this.socket,\n            servername: this.tlsName,\n            host: this.tlsHost, // orderflow patch: checked when there is no server name (an IP)\n            rejectUnauthorized: true,\n",
  },
];

for (const p of patches) {
  // Workspaces hoist dependencies to the root node_modules; the package's exports map hides
  // package.json from require.resolve, so look for the folder itself.
  const dir = join(root, "node_modules", p.package);
  if (!existsSync(join(dir, "package.json"))) continue; // not installed: nothing to patch
  for (const file of p.files) {
    const path = join(dir, file);
    if (!existsSync(path)) continue;
    const text = readFileSync(path, "utf8");
    if (text.includes(p.replace)) continue;
    if (!text.includes(p.find)) {
      console.error(`patch "${p.name}" no longer applies to ${path}: check whether upstream fixed it, then update scripts/patches/apply.mjs`);
      process.exit(1);
    }
    writeFileSync(path, text.replace(p.find, p.replace));
    console.log(`patched ${p.package}/${file}: ${p.name}`);
  }
}
