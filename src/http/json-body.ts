/**
 * The JSON body parser: fastify's own (secure-json-parse, prototype poisoning refused), behind a
 * nesting-depth check on the raw text. Every later step that walks a body (validation, the
 * lax-mode conversion, the JSON-schema check) recurses, and a body of 20,000 nested arrays
 * overflowed the stack in them (issue 10); bounding depth once, before parsing, bounds them all.
 * The limit and its error are documented in docs/ERRORS.md "Limits".
 */
import type { FastifyInstance } from "fastify";
import { AppError } from "../errors/app-error.ts";

/** Deepest nesting of objects and arrays a request body may have. Real requests stay far below
 * it: an image part is 5 levels deep, a tool's parameter schema 4 + 2 per schema level (docs/ERRORS.md). */
export const MAX_JSON_DEPTH = 128;

/**
 * Where `text` first nests deeper than `maxDepth` objects/arrays (the character offset), or -1.
 * Iterative and linear; brackets inside strings don't count. Text that is not JSON is left for
 * the parser to refuse.
 */
export function findJsonDepthOverflow(text: string, maxDepth: number): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return i;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return -1;
}

export function tooDeep(maxDepth: number, offset: number): AppError {
  const msg = `JSON decode error: nesting deeper than ${maxDepth} levels of objects and arrays (at character ${offset})`;
  return new AppError("INVALID_REQUEST", `Invalid input: the body nests objects and arrays deeper than ${maxDepth} levels.`, {
    param: "body",
    details: [{ type: "json_invalid", loc: ["body"], msg, ctx: { max_depth: maxDepth } }],
  });
}

/** Replaces fastify's application/json parser with the same parser behind the depth check. */
export function registerJsonBodyParser(app: FastifyInstance, maxDepth = MAX_JSON_DEPTH): void {
  const parse = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const offset = findJsonDepthOverflow(body as string, maxDepth);
    if (offset >= 0) done(tooDeep(maxDepth, offset), undefined);
    else parse(request, body as string, done);
  });
}
