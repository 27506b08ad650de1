/**
 * Facts the code relies on live in the repository's docs/, and comments cite them there: no file
 * points at research notes a reader of the repository does not have, and every `docs/X.md` a
 * file cites exists, with the section it names (`docs/AZURE-API.md "Streaming"`,
 * `docs/MODELS.md, "Model table", "Azure quota"`).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SCANNED = ["src", "test", "bench", "examples", "scripts", "docs", "README.md"];

/** References to notes outside the repository (written so that this file does not match itself). */
const FORBIDDEN: readonly { pattern: RegExp; why: string }[] = [
  { pattern: /shared\/(?:spec|STYLE)/, why: "points outside the repository" },
  {
    pattern: /\b(?:azure-model-inference-api|engine-notes|peers|phi-models|vision-and-safety)\.md\b/,
    why: "cites a research note by name; cite docs/<FILE>.md and a section",
  },
  { pattern: /§\s?\d/, why: "cites a numbered section of a note; cite docs/<FILE>.md and a section name" },
];

/**
 * `docs/X.md`, with the name in capitals as all of phiserve's docs are (`docs/ERRORS.md`); `../../docs/X.md`
 * counts. Not `other-repo/docs/X.md`, nor other projects' lower- or mixed-case docs (ggml's `docs/gguf.md`).
 */
const DOC_REF = /(?<![\w-]\/)(?<![\w-])docs\/([A-Z][A-Z0-9_-]*)\.md/g;
const FIRST_SECTION = /^[,:]?[ \t]+"([^"\n]{1,80})"/;
const NEXT_SECTION = /^(?:,[ \t]*|[ \t]+and[ \t]+)"([^"\n]{1,80})"/;

export interface CitationProblem {
  file: string;
  problem: string;
}

/** Joins comment continuation lines so a citation wrapped over two lines reads as one. */
function unwrapComments(text: string): string {
  return text.replace(/[ \t]*\n[ \t]*(?:\*(?!\/)|\/\/)?[ \t]*/g, " ");
}

function headingsOf(markdown: string): Set<string> {
  const headings = new Set<string>();
  for (const line of markdown.split("\n")) {
    const m = /^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$/.exec(line);
    if (m) headings.add(m[1]!.toLowerCase());
  }
  return headings;
}

/** Problems in one file's text; `readDoc(name)` gives docs/<name>.md or undefined when it does not exist. */
export function findCitationProblems(file: string, text: string, readDoc: (name: string) => string | undefined): CitationProblem[] {
  const problems: CitationProblem[] = [];
  text.split("\n").forEach((line, index) => {
    for (const { pattern, why } of FORBIDDEN) {
      const m = pattern.exec(line);
      if (m) problems.push({ file, problem: `line ${index + 1}: "${m[0]}" ${why}` });
    }
  });
  const flat = unwrapComments(text);
  for (const ref of flat.matchAll(DOC_REF)) {
    const name = ref[1]!;
    const doc = readDoc(name);
    if (doc === undefined) {
      problems.push({ file, problem: `cites docs/${name}.md, which does not exist` });
      continue;
    }
    const headings = headingsOf(doc);
    let rest = flat.slice(ref.index + ref[0].length);
    let section = FIRST_SECTION.exec(rest);
    while (section) {
      if (!headings.has(section[1]!.toLowerCase())) {
        problems.push({ file, problem: `cites docs/${name}.md "${section[1]}", which has no such section` });
      }
      rest = rest.slice(section[0].length);
      section = NEXT_SECTION.exec(rest);
    }
  }
  return problems;
}

function filesUnder(path: string): string[] {
  if (!existsSync(path)) return [];
  if (statSync(path).isFile()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .filter((entry) => entry.name !== "node_modules" && !entry.name.startsWith("."))
    .flatMap((entry) => filesUnder(join(path, entry.name)));
}

function readRepoDoc(name: string): string | undefined {
  const path = join(ROOT, "docs", `${name}.md`);
  return existsSync(path) ? readFileSync(path, "utf8") : undefined;
}

test("no file cites notes outside the repository, and every cited docs/X.md and section exists", () => {
  const self = fileURLToPath(import.meta.url); // its examples are checked by the test below
  const files = SCANNED.flatMap((p) => filesUnder(join(ROOT, p))).filter((path) => path !== self);
  assert.ok(files.length > 100, `scanned only ${files.length} files`);
  const problems: string[] = [];
  for (const path of files) {
    const buffer = readFileSync(path);
    if (buffer.includes(0)) continue; // binary
    const file = relative(ROOT, path);
    for (const p of findCitationProblems(file, buffer.toString("utf8"), readRepoDoc)) problems.push(`${p.file}: ${p.problem}`);
  }
  assert.deepEqual(problems, []);
});

test("the checker catches each kind of stale citation", () => {
  const docs: Record<string, string> = { "AZURE-API": "# Title\n\n## Streaming\n\n### The JavaScript sample\n" };
  const read = (name: string): string | undefined => docs[name];
  const check = (text: string): string[] => findCitationProblems("x.ts", text, read).map((p) => p.problem);

  assert.deepEqual(check('// framing (docs/AZURE-API.md "Streaming"), sample: docs/AZURE-API.md, "The JavaScript sample"'), []);
  assert.deepEqual(check('/**\n * wrapped (docs/AZURE-API.md "The JavaScript\n * sample").\n */'), []);
  assert.deepEqual(check('readFile(new URL("../../docs/AZURE-API.md", import.meta.url), "utf8")'), []);
  assert.deepEqual(check("see onnxruntime-genai/docs/ConstrainedDecoding.md and ggml `docs/gguf.md`"), []);

  assert.equal(check("// " + "shared/" + "spec/azure.md").length, 1);
  assert.equal(check("// " + "shared/" + "STYLE.md").length, 1);
  assert.equal(check("// (" + "engine-notes" + ".md)").length, 1);
  assert.equal(check("// (spec " + "§" + "3.2)").length, 1);
  assert.deepEqual(check("// see docs/NOPE.md"), ["cites docs/NOPE.md, which does not exist"]);
  assert.deepEqual(check('// (docs/AZURE-API.md, "Streaming", "Retries")'), [
    'cites docs/AZURE-API.md "Retries", which has no such section',
  ]);
  assert.deepEqual(check('// docs/AZURE-API.md "Streaming" and "Errors"'), [
    'cites docs/AZURE-API.md "Errors", which has no such section',
  ]);
});
