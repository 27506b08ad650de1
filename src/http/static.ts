/**
 * The playground (/playground) and the usage dashboard (/dashboard): static pages built by Vite from web/
 * into dist/web (scripts/build.js), served by @fastify/static. They are public, as the pages hold no data:
 * every API call they make carries the key the user typed (docs/PLAYGROUND.md "Serving").
 *
 * - The HTML pages: `cache-control: no-cache` (revalidated with their ETag, so a new build is seen at once),
 *   and a strict Content-Security-Policy: scripts, styles and connections from this origin only, no inline
 *   script or style, no framing (docs/PLAYGROUND.md "Content-Security-Policy").
 * - The assets under /ui/assets/: their names carry a content hash, so they are `immutable` for a year.
 */
import type { FastifyInstance, FastifyReply } from "fastify";
import fastifyStatic from "@fastify/static";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AppError } from "../errors/app-error.ts";

declare module "fastify" {
  interface FastifyContextConfig {
    /** A page or asset of the playground/dashboard: served without an API key (the server's auth hook skips it). */
    isPublicPage?: boolean;
  }
}

/** Where the hashed assets are served; Vite's `base` (web/vite.config.ts) must match. */
export const ASSETS_PREFIX = "/ui/assets/";

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  // data: for the pictures a user attaches (read as data URLs) and the empty favicon; blob: for exports.
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const PAGE_HEADERS = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "cache-control": "no-cache",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
};

const PAGES = { "/playground": "playground/index.html", "/dashboard": "dashboard/index.html" } as const;

/**
 * The built pages: dist/web next to the compiled server (dist/http → dist/web), or, when the server runs
 * from its TypeScript sources, the repository's dist/web. Undefined when neither was built.
 */
export function locateWebBuild(): string | undefined {
  for (const candidate of ["../web/", "../../dist/web/"]) {
    const dir = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(join(dir, "playground", "index.html"))) return dir;
  }
  return undefined;
}

/** Registers /playground, /dashboard and /ui/assets/*. `webRoot` undefined: the pages answer 404 saying how to build them. */
export function registerWebPages(app: FastifyInstance, webRoot: string | undefined): void {
  app.register(async (scope) => {
    // Every route of this scope is public (the flag the server's auth hook reads).
    scope.addHook("onRoute", (route) => {
      route.config = { ...route.config, isPublicPage: true };
    });
    if (webRoot === undefined) {
      for (const path of Object.keys(PAGES)) {
        scope.get(path, async () => {
          throw new AppError("ROUTE_NOT_FOUND", `The ${path.slice(1)} is not built: run \`npm run build\` (it needs the devDependencies).`);
        });
      }
      return;
    }
    await scope.register(fastifyStatic, {
      root: join(webRoot, "assets"),
      prefix: ASSETS_PREFIX,
      index: false,
      list: false,
      dotfiles: "deny",
      cacheControl: true,
      maxAge: "365d",
      immutable: true,
      setHeaders: (reply) => reply.header("x-content-type-options", "nosniff"),
    });
    for (const [path, file] of Object.entries(PAGES)) {
      scope.get(path, (_request, reply: FastifyReply) => reply.headers(PAGE_HEADERS).sendFile(file, webRoot, { cacheControl: false }));
    }
  });
}
