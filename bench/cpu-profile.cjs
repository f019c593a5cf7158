// Preloaded into a service (NODE_OPTIONS=--require) when the bench profiles: node 20 refuses
// --cpu-prof in NODE_OPTIONS, so this starts the V8 profiler itself and writes a .cpuprofile
// (open it in Chrome DevTools' Performance panel) when the process exits.
const inspector = require("node:inspector");
const { mkdirSync, writeFileSync } = require("node:fs");
const { join } = require("node:path");

const dir = process.env.BENCH_CPU_PROFILE_DIR;
if (dir) {
  const session = new inspector.Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 200 });
  session.post("Profiler.start");
  process.on("exit", () => {
    // An in-process session answers synchronously, so this completes inside the exit handler.
    session.post("Profiler.stop", (err, result) => {
      if (err) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
