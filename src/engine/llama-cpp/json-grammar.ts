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

/**
 * Compiled grammars by constraint, shared by every request: the generic JSON grammar and each
 * distinct schema are compiled once (at most 64 kept). A failed compile is forgotten, so the
 * error is raised again for the next request instead of being cached.
 */
export class JsonGrammarCache {
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();

  get(llama: Llama, constraint: OutputConstraint): Promise<LlamaGrammar> {
    const key = constraint.type === "json" ? "json" : JSON.stringify(constraint.schema);
    let grammar = this.grammars.get(key);
    if (!grammar) {
      grammar = createJsonGrammar(llama, constraint);
      if (this.grammars.size > 64) this.grammars.clear();
      this.grammars.set(key, grammar);
      grammar.catch(() => this.grammars.delete(key));
    }
    return grammar;
  }
}
