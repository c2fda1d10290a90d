// The container image for run_all's image runner: built (`node scripts/image.mjs`), a working
// container made from it (`buildah from`), its root mounted (`buildah mount`) with /proc inside (a
// Bun-compiled binary reads /proc/self/exe) and the project's directory bound at the same path (the
// tests hand the server their own config and state files). `podman run` is refused in this sandbox
// (cgroups, rlimits): the entrypoint runs under `chroot` in that root instead, as the image's user.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const buildah = (...args) => execFileSync("buildah", ["--storage-driver", "vfs", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();

/** Builds the image as `tag`; returns the line scripts/image.mjs printed (name and size). */
export function buildImage(root, tag) {
  const result = spawnSync(process.execPath, [join(root, "scripts", "image.mjs"), "--tag", tag], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  if (result.status !== 0) throw new Error(`node scripts/image.mjs failed (exit ${result.status ?? result.signal})`);
  return result.stdout.trim().split("\n").pop();
}

/**
 * Mounts `tag`'s root with /proc and `binds` (host directories, at the same paths inside).
 * Returns the root, the image's config (User, Entrypoint, Cmd, Env, WorkingDir) and `cleanup()`,
 * which undoes all of it (and is safe to call twice).
 */
export function mountImage(tag, binds = []) {
  const container = buildah("from", "--pull-never", "--name", `chaos-signal-test-${process.pid}`, tag);
  const mounts = [];
  let done = false;
  const cleanup = () => {
    if (done) return;
    done = true;
    for (const path of mounts.reverse()) spawnSync("umount", ["--lazy", path], { stdio: "ignore" });
    spawnSync("buildah", ["--storage-driver", "vfs", "umount", container], { stdio: "ignore" });
    spawnSync("buildah", ["--storage-driver", "vfs", "rm", container], { stdio: "ignore" });
  };
  try {
    const root = buildah("mount", container);
    const mount = (args, path) => {
      execFileSync("mount", [...args, path], { stdio: "inherit" });
      mounts.push(path);
    };
    mount(["-t", "proc", "proc"], join(root, "proc"));
    for (const dir of binds) {
      const inside = join(root, dir);
      mkdirSync(inside, { recursive: true });
      mount(["--bind", dir], inside);
    }
    const config = JSON.parse(buildah("inspect", "--type", "image", tag)).OCIv1.config;
    return { root, container, config, cleanup };
  } catch (error) {
    cleanup();
    throw error;
  }
}

/** Removes the test image (vfs keeps a full copy of each). */
export function removeImage(tag) {
  spawnSync("buildah", ["--storage-driver", "vfs", "rmi", "--force", tag], { stdio: "ignore" });
}
