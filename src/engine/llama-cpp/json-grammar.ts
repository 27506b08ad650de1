/**
 * Grammars for JSON output. node-llama-cpp builds the GBNF (from a JSON schema, or its generic
 * JSON grammar); two of its number rules are tightened here so that what the grammar allows is
 * what a JSON client can use:
 * - integers get no exponent (`96E4680` is an "integer" JSON.parse turns into Infinity, and
 *   validators reject it);
 * - exponents of other numbers get at most two digits, so every number stays finite.
 * And a string character is a Unicode scalar value: the library's `[^"\\\x7F\x00-\x1F]` also takes
 * what llama.cpp's lenient UTF-8 reader makes of invalid byte sequences from byte-fallback tokens
 * (an `F8` lead byte reads as a code point above U+10FFFF, `ED A0 80` as a surrogate), which reach the
 * client as U+FFFD characters, one per byte, and break `maxLength` (seen: four for one character).
 * The patch is checked: if the library's rules change shape, grammar creation fails loudly.
 */
import type { Llama, LlamaGrammar } from "node-llama-cpp";
import type { OutputConstraint } from "../engine.ts";

const SCHEMA_EXPONENT = ' ([eE] [-+]? ("0" | [1-9] [0-9]{0,15}))?';
const SCHEMA_SHORT_EXPONENT = ' ([eE] [-+]? [1-9] [0-9]?)?';
const JSON_EXPONENT = "([eE] [-+]? [0-9] [1-9]{0,15})?";
const JSON_SHORT_EXPONENT = "([eE] [-+]? [1-9] [0-9]?)?";

const ANY_STRING_CHAR = String.raw`[^"\\\x7F\x00-\x1F]`;
/** The same characters, as scalar values only: no surrogates, nothing above U+10FFFF. */
const SCALAR_STRING_CHAR = String.raw`[ !#-[\]-~\x80-\uD7FF\uE000-\U0010FFFF]`;

/** Rewrites the number rules and the string characters of a node-llama-cpp JSON grammar (see the module comment). */
export function tightenJsonGrammar(gbnf: string): string {
  if (/^string(-char-rule)? *::=/m.test(gbnf) && !gbnf.includes(ANY_STRING_CHAR)) throw new Error(`unexpected JSON string rule shape: no ${ANY_STRING_CHAR}`);
  const lines = gbnf.split("\n").map((line) => {
    if (line.startsWith("integer-number-rule ::=")) return replaceOnce(line, SCHEMA_EXPONENT, "");
    if (line.startsWith("fractional-number-rule ::=")) return replaceOnce(line, SCHEMA_EXPONENT, SCHEMA_SHORT_EXPONENT);
    if (line.startsWith("number ::=")) return replaceOnce(line, JSON_EXPONENT, JSON_SHORT_EXPONENT);
    return line.replaceAll(ANY_STRING_CHAR, SCALAR_STRING_CHAR);
  });
  return lines.join("\n");
}

function replaceOnce(line: string, from: string, to: string): string {
  if (!line.includes(from)) throw new Error(`unexpected JSON number rule shape: ${line}`);
  return line.replace(from, to);
}

export async function createJsonGrammar(llama: Llama, constraint: OutputConstraint): Promise<LlamaGrammar> {
  const generated = constraint.type === "json"
    ? await llama.getGrammarFor("json")
    : await llama.createGrammarForJsonSchema(constraint.schema as never);
  return llama.createGrammar({ grammar: tightenJsonGrammar(generated.grammar), rootRuleName: generated.rootRuleName });
}

/** Grammars kept: at most this many, holding at most this many bytes (a schema can be megabytes). */
const CACHED_GRAMMARS = 64;
const CACHED_GRAMMAR_BYTES = 8 * 1024 * 1024;

/**
 * Compiled grammars by constraint, shared by every request: the generic JSON grammar and each
 * distinct schema are compiled once, within the bounds above (oldest dropped first; a schema too
 * big for them is compiled for its request only). A failed compile is forgotten, so the error is
 * raised again for the next request instead of being cached.
 */
export class JsonGrammarCache {
  private readonly grammars = new Map<string, { grammar: Promise<LlamaGrammar>; bytes: number }>();
  private bytes = 0;

  get(llama: Llama, constraint: OutputConstraint): Promise<LlamaGrammar> {
    const key = constraint.type === "json" ? "json" : JSON.stringify(constraint.schema);
    const cached = this.grammars.get(key);
    if (cached) return cached.grammar;
    const grammar = createJsonGrammar(llama, constraint);
    // The key (UTF-16) and the GBNF built from it, which grows with the schema: about as much again.
    const bytes = key.length * 4;
    if (bytes > CACHED_GRAMMAR_BYTES) return grammar;
    this.grammars.set(key, { grammar, bytes });
    this.bytes += bytes;
    grammar.catch(() => this.forget(key));
    for (const oldest of this.grammars.keys()) {
      if (this.grammars.size <= CACHED_GRAMMARS && this.bytes <= CACHED_GRAMMAR_BYTES) break;
      this.forget(oldest);
    }
    return grammar;
  }

  /** Entries and bytes held now (for tests). */
  size(): { entries: number; bytes: number } {
    return { entries: this.grammars.size, bytes: this.bytes };
  }

  private forget(key: string): void {
    const entry = this.grammars.get(key);
    if (!entry) return;
    this.grammars.delete(key);
    this.bytes -= entry.bytes;
  }
}
