export * from "./args.js";
export * from "./progress.js";
export * from "./replay.js";
export * from "./inbox-target.js";
export * from "./cli.js";
