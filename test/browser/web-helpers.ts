/** Helpers of the browser tests and the playground benchmark: building the pages, the axe scan. */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { REPO_ROOT } from "./browser.ts";

/** Builds web/ into dist/web (Vite, well under a second), so the tests serve the current sources. */
export function buildWeb(): void {
  const result = spawnSync(process.execPath, [join(REPO_ROOT, "web", "build.js")], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`web build failed:\n${result.stdout}\n${result.stderr}`);
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown[] }[];
}

const axeSource = (): string => readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * Runs axe-core in the page (WCAG 2.0/2.1 A and AA rules and best practices). The source is evaluated through
 * the DevTools protocol, which the page's CSP does not govern; no script tag is added to the page.
 */
export async function runAxe(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(`${axeSource()}\n;0`);
  return (await page.evaluate(`axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } }).then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) })))`)) as AxeViolation[];
}

/** The violations that fail the tests: serious and critical ones, as "rule: help (targets)" lines. */
export function seriousViolations(violations: readonly AxeViolation[]): string[] {
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => JSON.stringify(n.target)).join(", ")})`);
}
