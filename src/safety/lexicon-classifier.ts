/**
 * The lexicon classifier (docs/SAFETY.md "Lexicon"): weighted patterns per harm category, each with a
 * severity on Azure's 0–7 scale, the text's severity in a category being the highest among the
 * patterns found; and jailbreak wordings on prompts. Operator rules come from configuration; the
 * built-in English lexicon (default-lexicon.ts, plus obscenity's English words mapped to categories)
 * is the weak default. It is a keyword lexicon without context: it misses paraphrase and flags quotes,
 * fiction and medicine that use the same words.
 */
import { createHash } from "node:crypto";
import { DataSet, englishDataset, type RegExpMatcher } from "obscenity";
import {
  compileGuardedRegExp,
  createProfanityMatcher,
  createTermMatcher,
  decodeLeetSpeak,
  MAX_BLOCKLIST_ITEM_CHARS,
  testInWindows,
  toMatchingForm,
  WorkPacer,
  type TermMatcher,
} from "./blocklist-classifier.ts";
import { HARM_CATEGORIES, type Classification, type HarmCategory, type TextClassifier, type TextRole } from "./classifier.ts";
import { BUILT_IN_CATEGORY_RULES, BUILT_IN_JAILBREAK_PATTERNS, PROFANITY_WORD_SEVERITIES, SLUR_SEVERITIES, type WordSeverity } from "./default-lexicon.ts";

export interface LexiconRule {
  /**
   * An exact phrase (whole words, with obscenity's normalisation, as blocklist terms) or, with `isRegex`,
   * a JavaScript regex (flags `u` and `i`, refused if it can backtrack catastrophically) run on the
   * text's matching form (lower case, whitespace collapsed, accents off Latin letters) and its
   * leet-decoded twin.
   */
  pattern: string;
  isRegex?: boolean;
  /** A harm category, or `jailbreak` (checked on prompts only; its severity is not used). */
  category: HarmCategory | "jailbreak";
  /** 0–7, Azure's scale. */
  severity: number;
}

export interface LexiconClassifierOptions {
  /** Operator rules, in addition to the built-in lexicon when `builtIn` is set. */
  rules?: readonly LexiconRule[];
  /** Use the built-in English lexicon. */
  builtIn: boolean;
}

/** The built-in patterns are lower case and run on lower-cased text: no `i`, and no `u` (several times slower). */
const BUILT_IN_FLAGS = "g";

interface RegexRule {
  regExp: RegExp;
  category: HarmCategory | "jailbreak";
  severity: number;
}

interface Findings {
  severities: Partial<Record<HarmCategory, number>>;
  jailbreak: boolean;
}

function validateRule(rule: LexiconRule, index: number): void {
  const where = `Lexicon rule ${index + 1} (${JSON.stringify(rule.pattern.slice(0, 80))})`;
  if (rule.category !== "jailbreak" && !HARM_CATEGORIES.includes(rule.category)) {
    throw new Error(`${where} has an unknown category ${JSON.stringify(rule.category)}: use one of ${[...HARM_CATEGORIES, "jailbreak"].join(", ")}`);
  }
  if (!Number.isInteger(rule.severity) || rule.severity < 0 || rule.severity > 7) throw new Error(`${where} has severity ${rule.severity}: use an integer from 0 to 7`);
  if (rule.pattern.trim() === "") throw new Error(`${where} is empty`);
  if (rule.pattern.length > MAX_BLOCKLIST_ITEM_CHARS) throw new Error(`${where} is longer than ${MAX_BLOCKLIST_ITEM_CHARS} characters`);
}

function compileRegexRule(pattern: string, category: HarmCategory | "jailbreak", severity: number, where: string, flags?: string): RegexRule {
  try {
    return { regExp: compileGuardedRegExp(pattern, flags), category, severity };
  } catch (error) {
    throw new Error(`${where} ${(error as Error).message}`);
  }
}

/** obscenity's English words with a severity: the named ones, and the slurs found by their hash. */
function wordSeverities(): Map<string, readonly WordSeverity[]> {
  const byWord = new Map<string, readonly WordSeverity[]>(Object.entries(PROFANITY_WORD_SEVERITIES));
  const slurs = new Map(SLUR_SEVERITIES.map((s) => [s.sha256Prefix, s.severity]));
  new DataSet<{ originalWord: string }>().addAll(englishDataset).removePhrasesIf((phrase) => {
    const word = phrase.metadata?.originalWord;
    const severity = word === undefined ? undefined : slurs.get(createHash("sha256").update(word).digest("hex").slice(0, 16));
    if (word !== undefined && severity !== undefined) byWord.set(word, [{ category: "hate", severity }]);
    return false;
  });
  return byWord;
}

/**
 * The lexicon classifier. Reports a severity for each category that has at least one rule (all four
 * with the built-in lexicon), and `jailbreak` on prompts when any jailbreak rule exists; never on
 * completions. Throws at construction on an invalid rule.
 */
export function createLexiconClassifier(options: LexiconClassifierOptions): TextClassifier {
  const operatorRules = options.rules ?? [];
  operatorRules.forEach(validateRule);
  const regexRules: RegexRule[] = [];
  if (options.builtIn) {
    for (const r of BUILT_IN_CATEGORY_RULES) regexRules.push(compileRegexRule(r.pattern, r.category, r.severity, "Built-in lexicon rule", BUILT_IN_FLAGS));
    for (const p of BUILT_IN_JAILBREAK_PATTERNS) regexRules.push(compileRegexRule(p, "jailbreak", 0, "Built-in jailbreak rule", BUILT_IN_FLAGS));
  }
  operatorRules.forEach((r, i) => {
    if (r.isRegex === true) regexRules.push(compileRegexRule(r.pattern, r.category, r.severity, `Lexicon rule ${i + 1} (${JSON.stringify(r.pattern.slice(0, 80))})`));
  });
  const phraseRules = operatorRules.filter((r) => r.isRegex !== true);
  let phrases: TermMatcher | undefined;
  try {
    phrases = phraseRules.length > 0 ? createTermMatcher(phraseRules.map((r) => r.pattern)) : undefined;
  } catch (error) {
    throw new Error(`A lexicon phrase rule ${(error as Error).message}`);
  }
  const words: { matcher: RegExpMatcher; severities: Map<string, readonly WordSeverity[]> } | undefined = options.builtIn
    ? { matcher: createProfanityMatcher(), severities: wordSeverities() }
    : undefined;

  const assessed = new Set<HarmCategory>(options.builtIn ? HARM_CATEGORIES : []);
  for (const r of operatorRules) if (r.category !== "jailbreak") assessed.add(r.category);
  const hasJailbreakRules = options.builtIn || operatorRules.some((r) => r.category === "jailbreak");

  return {
    name: "lexicon",
    async classify(text: string, role: TextRole, signal: AbortSignal): Promise<Classification> {
      signal.throwIfAborted();
      const form = toMatchingForm(text);
      const decoded = decodeLeetSpeak(form);
      const forms = decoded === form ? [form] : [form, decoded];
      const found: Findings = { severities: Object.fromEntries([...assessed].map((c) => [c, 0])), jailbreak: false };
      const record = (category: HarmCategory | "jailbreak", severity: number) => {
        if (category === "jailbreak") found.jailbreak = true;
        else found.severities[category] = Math.max(found.severities[category] ?? 0, severity);
      };

      for (const index of phrases?.findAll(form) ?? []) {
        const r = phraseRules[index];
        if (r !== undefined && (r.category !== "jailbreak" || role === "prompt")) record(r.category, r.severity);
      }
      if (words !== undefined) {
        for (const match of words.matcher.getAllMatches(form)) {
          const word = englishDataset.getPayloadWithPhraseMetadata(match).phraseMetadata?.originalWord;
          for (const s of (word === undefined ? undefined : words.severities.get(word)) ?? []) record(s.category, s.severity);
        }
      }
      const pacer = new WorkPacer(signal);
      for (const r of regexRules) {
        // The highest severity is all that is reported: skip a rule that cannot raise it.
        if (r.category === "jailbreak" ? role !== "prompt" || found.jailbreak : (found.severities[r.category] ?? 0) >= r.severity) continue;
        for (const f of forms) {
          if (await testInWindows(r.regExp, f, pacer)) {
            record(r.category, r.severity);
            break;
          }
        }
      }
      signal.throwIfAborted();
      return { severities: found.severities, jailbreak: role === "prompt" && hasJailbreakRules ? found.jailbreak : undefined };
    },
  };
}
