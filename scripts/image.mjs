#!/usr/bin/env node
// `npm run image`: builds chaos-signal's container image with buildah, FROM scratch (no base image
// is pulled). It prepares a build context from the compiled binary (`npm run build` makes
// dist/chaos-signal): the binary, the dynamic loader and libraries `ldd` lists, a passwd and group
// with the non-root user 65532, /tmp, /proc (a mount point: Bun reads /proc/self/exe), CA
// certificates, and the default config; then `buildah bud` with deploy/container/Containerfile.
//
// Usage: node scripts/image.mjs [--tag NAME] [--context-only]
// Prints the image's name and size last: "image localhost/chaos-signal:0.1.0 (112.3 MB)".
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const args = process.argv.slice(2);
const tag = args.includes("--tag") ? args[args.indexOf("--tag") + 1] : `localhost/chaos-signal:${pkg.version}`;
const binary = join(root, "dist", "chaos-signal");
const context = join(root, "dist", "image-context");
const USER_ID = 65532;

if (!existsSync(binary)) fail(`${binary} is missing: run npm run build first`);
rmSync(context, { recursive: true, force: true });
const rootfs = join(context, "rootfs");

/** Copies a host file to the same path under rootfs, following symlinks (the name the loader asks for). */
function copyIn(path) {
  const target = join(rootfs, path);
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(path, target);
}

// The loader and libraries the binary links against, as `ldd` resolves them on this machine.
const ldd = execFileSync("ldd", [binary], { encoding: "utf8" });
const libraries = [...ldd.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map((match) => match[1]);
if (!libraries.some((path) => /ld-linux/.test(path))) fail(`ldd found no dynamic loader:\n${ldd}`);
for (const path of new Set(libraries)) copyIn(path);

copyFileSync(binary, join(context, "chaos-signal"));
const etc = join(rootfs, "etc");
mkdirSync(join(etc, "chaos-signal"), { recursive: true });
writeFileSync(join(etc, "passwd"), `root:x:0:0:root:/root:/sbin/nologin\nchaos-signal:x:${USER_ID}:${USER_ID}:chaos-signal:/data:/sbin/nologin\n`);
writeFileSync(join(etc, "group"), `root:x:0:\nchaos-signal:x:${USER_ID}:\n`);
writeFileSync(join(etc, "nsswitch.conf"), "passwd: files\ngroup: files\nhosts: files dns\n");
copyFileSync(join(root, "deploy", "container", "config.yaml"), join(etc, "chaos-signal", "config.yaml"));
const certificates = "/etc/ssl/certs/ca-certificates.crt";
if (existsSync(certificates)) copyIn(certificates);
else console.error(`image: ${certificates} not found on this machine; the image has no CA certificates`);
for (const dir of ["tmp", "proc", "dev"]) mkdirSync(join(rootfs, dir), { recursive: true });
chmodSync(join(rootfs, "tmp"), 0o1777);
mkdirSync(join(context, "data"), { recursive: true });

if (args.includes("--context-only")) {
  console.log(`context ${context}`);
  process.exit(0);
}

const buildah = (...command) => execFileSync("buildah", ["--storage-driver", "vfs", ...command], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
const source = typeof pkg.repository === "string" ? pkg.repository : pkg.repository?.url?.replace(/^git\+/, "").replace(/\.git$/, "");
buildah(
  "bud", "--quiet", "--format", "oci", "--tag", tag,
  "--build-arg", `VERSION=${pkg.version}`, ...(source ? ["--build-arg", `SOURCE=${source}`] : []),
  "--file", join(root, "deploy", "container", "Containerfile"), context,
);
console.log(`image ${tag} (${buildah("images", "--noheading", "--format", "{{.Size}}", tag).trim()})`);

function fail(message) {
  console.error(`image: ${message}`);
  process.exit(1);
}
