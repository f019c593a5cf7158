import { nkeys } from "@nats-io/nats-core";

type KeyPair = ReturnType<typeof nkeys.createOperator>;

const b64u = (b: Uint8Array | string) => Buffer.from(b).toString("base64url");

/** A NATS v2 JWT: `nats` claims for `subject`, signed by `issuer` (as nsc would write it). */
function natsJwt(issuer: KeyPair, subject: string, name: string, nats: Record<string, unknown>): string {
  const header = b64u(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" }));
  const claims = { jti: b64u(crypto.getRandomValues(new Uint8Array(16))), iat: Math.floor(Date.now() / 1000), iss: issuer.getPublicKey(), name, sub: subject, nats: { ...nats, version: 2 } };
  const payload = b64u(JSON.stringify(claims));
  return `${header}.${payload}.${b64u(issuer.sign(new TextEncoder().encode(`${header}.${payload}`)))}`;
}

const unlimited = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };

/**
 * Decentralized auth for a test nats-server, without nsc: an operator, a system account, an
 * account with JetStream and one user. `config` is the server's (to pass to startOwnNatsServer),
 * `creds` the user's credentials file and `otherCreds` a user the server does not know.
 */
export function operatorMode(): { config: string; creds: string; otherCreds: string } {
  const operator = nkeys.createOperator();
  const system = nkeys.createAccount();
  const account = nkeys.createAccount();
  const credsOf = (signer: KeyPair) => {
    const user = nkeys.createUser();
    const jwt = natsJwt(signer, user.getPublicKey(), "user", { type: "user", pub: {}, sub: {}, subs: -1, data: -1, payload: -1 });
    const seed = new TextDecoder().decode(user.getSeed());
    return `-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`;
  };
  const accountJwt = natsJwt(operator, account.getPublicKey(), "app", { type: "account", limits: { ...unlimited, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 } });
  const systemJwt = natsJwt(operator, system.getPublicKey(), "SYS", { type: "account", limits: unlimited });
  const config = [
    `operator: ${natsJwt(operator, operator.getPublicKey(), "test", { type: "operator" })}`,
    `system_account: ${system.getPublicKey()}`,
    "resolver: MEMORY",
    `resolver_preload: { ${account.getPublicKey()}: ${accountJwt}, ${system.getPublicKey()}: ${systemJwt} }`,
  ].join("\n");
  // Signed by an account the server never heard of.
  return { config, creds: credsOf(account), otherCreds: credsOf(nkeys.createAccount()) };
}
