/**
 * V8 heap settings every service process runs with; the image sets the same (Dockerfile,
 * checked by the deploy tests), and the chart's memory limits leave room above them.
 *
 * Measured on the bench machine at saturation: V8's defaults (16 MB semi-spaces, an old
 * generation sized from the host's RAM) let a service reach 175 MB; a 4 MB young generation
 * alone, ~150 MB at the same throughput; capping the old generation as well, ~100 MB for ~10%
 * more CPU in full collections. The cap is what a container wants anyway: V8 collects before
 * the kernel's OOM killer steps in, instead of sizing its heap from the node's memory.
 */
export const SERVICE_NODE_OPTIONS = "--max-semi-space-size=4 --max-old-space-size=256";
