/**
 * The hosts and ports of a postgres:// URL, when the driver cannot read them itself. postgres.js
 * splits its authority at every ':' and so took `[::1]:5432` for host "[" (an IPv6 literal was
 * unusable, alone or in a list of hosts); given as arrays they are used as they are. Undefined
 * for a URL without an IPv6 literal, which the driver reads as it always has.
 */
export function postgresHosts(url: string): { host: string[]; port: number[] } | undefined {
  const authority = /^postgres(?:ql)?:\/\/(?:[^@/?#]*@)?([^/?#]*)/.exec(url)?.[1];
  if (!authority?.includes("[")) return undefined;
  const host: string[] = [];
  const port: number[] = [];
  for (const entry of authority.split(",")) {
    // `[v6]`, `[v6]:port`, `name`, `name:port`, as libpq takes them.
    const m = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(entry) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(entry);
    if (!m) return undefined;
    host.push(decodeURIComponent(m[1]!));
    // No port: the driver's own default, PGPORT or 5432.
    port.push(Number(m[2] ?? (process.env.PGPORT || 5432)));
  }
  return { host, port };
}
