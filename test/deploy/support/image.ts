import { existsSync } from "node:fs";
import { repoPath, run } from "./repo.js";

/** Every buildah call uses the same storage driver; vfs works without overlay support. */
export const buildah = (args: string[], timeoutMs?: number) => run("buildah", ["--storage-driver", "vfs", ...args], { timeoutMs });

/** Makes sure the stand-in base image exists (builds it once, then it comes from the cache). */
export async function ensureBaseImage() {
  const { stdout } = await run("bash", [repoPath("scripts/deploy/base-image.sh")], { timeoutMs: 900_000 });
  return stdout.trim();
}

/** Builds one service image from the top-level Dockerfile, as CI does; returns the seconds it took. */
export async function buildImage(service: string, ref: string, target = "runtime") {
  const ca = process.env.NODE_EXTRA_CA_CERTS || "/etc/ssl/certs/ca-certificates.crt";
  const started = Date.now();
  await buildah(
    [
      "bud",
      "--isolation", "chroot",
      "--pull=never",
      // No per-instruction layer cache: with the vfs driver every cached layer is a full copy of
      // the tree, which made builds slower and ate GBs. npm's download cache is a cache mount.
      "--layers=false",
      "--target", target,
      "--build-arg", `SERVICE=${service}`,
      // The npm registry is reached through a TLS-intercepting proxy here: hand its CA to the
      // builder stage as a secret, so it never lands in a layer of the image.
      ...(existsSync(ca) ? ["--secret", `id=npm_ca,src=${ca}`] : []),
      "-f", repoPath("Dockerfile"),
      "-t", ref,
      repoPath("."),
    ],
    900_000,
  );
  // The image this tag pointed at before is now dangling: drop it so runs don't pile up.
  await buildah(["rmi", "--prune"]).catch(() => undefined);
  return (Date.now() - started) / 1000;
}

export interface ImageConfig {
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  User?: string;
  WorkingDir?: string;
  Labels?: Record<string, string>;
}

export async function imageConfig(ref: string): Promise<ImageConfig> {
  const { stdout } = await buildah(["inspect", "--type", "image", ref]);
  const info = JSON.parse(stdout) as { OCIv1: { config: ImageConfig } };
  return info.OCIv1.config;
}

/** Uncompressed size in bytes, as `buildah images` reports it. */
export async function imageSize(ref: string): Promise<string> {
  const { stdout } = await buildah(["images", "--noheading", "--format", "{{.Size}}", ref]);
  return stdout.trim();
}

/** A working container of the image with its root filesystem mounted; remove() deletes both. */
export async function mountImage(ref: string, name: string) {
  await buildah(["rm", name]).catch(() => undefined);
  await buildah(["from", "--pull=never", "--name", name, ref]);
  const { stdout } = await buildah(["mount", name]);
  return {
    name,
    root: stdout.trim(),
    remove: async () => {
      await buildah(["umount", name]).catch(() => undefined);
      await buildah(["rm", name]).catch(() => undefined);
    },
  };
}
