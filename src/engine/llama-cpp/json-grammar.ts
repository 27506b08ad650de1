/**
 * Grammars for JSON output. node-llama-cpp builds the GBNF (from a JSON schema, or its generic
 * JSON grammar); two of its number rules are tightened here so that what the grammar allows is
 * what a JSON client can use:
 * - integers get no exponent (`96E4680` is an "integer" JSON.parse turns into Infinity, and
 *   validators reject it);
 * - exponents of other numbers get at most two digits, so every number stays finite.
 * The patch is checked: if the library's rules change shape, grammar creation fails loudly.
 */
import type { Llama, LlamaGrammar } from "node-llama-cpp";
import type { OutputConstraint } from "../engine.ts";

const SCHEMA_EXPONENT = ' ([eE] [-+]? ("0" | [1-9] [0-9]{0,15}))?';
const SCHEMA_SHORT_EXPONENT = ' ([eE] [-+]? [1-9] [0-9]?)?';
const JSON_EXPONENT = "([eE] [-+]? [0-9] [1-9]{0,15})?";
const JSON_SHORT_EXPONENT = "([eE] [-+]? [1-9] [0-9]?)?";

/** Rewrites the number rules of a node-llama-cpp JSON grammar (see the module comment). */
export function tightenNumberRules(gbnf: string): string {
  const lines = gbnf.split("\n").map((line) => {
    if (line.startsWith("integer-number-rule ::=")) return replaceOnce(line, SCHEMA_EXPONENT, "");
    if (line.startsWith("fractional-number-rule ::=")) return replaceOnce(line, SCHEMA_EXPONENT, SCHEMA_SHORT_EXPONENT);
    if (line.startsWith("number ::=")) return replaceOnce(line, JSON_EXPONENT, JSON_SHORT_EXPONENT);
    return line;
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
  return llama.createGrammar({ grammar: tightenNumberRules(generated.grammar), rootRuleName: generated.rootRuleName });
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
