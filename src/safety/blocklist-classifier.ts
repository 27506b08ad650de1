/**
 * Profanity and custom blocklists (docs/SAFETY.md "Blocklists and profanity"), matched with the
 * `obscenity` library: its English profanity data set, and its normalisation (confusable characters,
 * leet-speak, case, repeated letters) for blocklist terms too, so "p1zza" and "piiizza" hit "pizza".
 * Regex items are JavaScript regular expressions, checked at construction and run over bounded windows
 * of the text. This classifier reports no severities: it does not assess the harm categories.
 *
 * The text helpers exported here (normalisation, term matching, guarded regexes) are shared with the
 * lexicon classifier.
 */
import {
  englishDataset,
  englishRecommendedBlacklistMatcherTransformers,
  englishRecommendedTransformers,
  parseRawPattern,
  RegExpMatcher,
  resolveConfusablesTransformer,
  resolveLeetSpeakTransformer,
  type TransformerContainer,
} from "obscenity";
import type { BlocklistHit, Classification, TextClassifier, TextRole } from "./classifier.ts";

export interface BlocklistItem {
  /** An exact term (matched as a whole word, with obscenity's normalisation) or a regular expression. */
  pattern: string;
  isRegex: boolean;
}

export interface Blocklist {
  /** Azure's blocklist name: letters, digits and `-._~`. Reported in `custom_blocklists.details[].id`. */
  id: string;
  items: readonly BlocklistItem[];
}

export interface BlocklistClassifierOptions {
  /** Report `profanity` from obscenity's English data set. */
  profanity: boolean;
  blocklists: readonly Blocklist[];
}

/** Azure's limits: 10,000 terms in one list, 1,000 characters in one item. */
export const MAX_BLOCKLIST_ITEMS = 10_000;
export const MAX_BLOCKLIST_ITEM_CHARS = 1_000;

/** Regex items run over windows of this many characters, each starting this many after the last. */
export const REGEX_WINDOW_CHARS = 1_024;
export const REGEX_WINDOW_STEP_CHARS = 512;
/** A window ends after a space found within this many characters of its nominal end, when there is one. */
const REGEX_WINDOW_SLACK_CHARS = 128;
/** Regex window tests between two yields to the event loop (where a timeout's abort can fire). */
const TESTS_PER_YIELD = 256;

const BLOCKLIST_ID = /^[0-9A-Za-z._~-]+$/;

/** Proper names and compounds that obscenity's English data set flags although they are benign. */
const EXTRA_PROFANITY_WHITELIST: readonly string[] = [
  "retardant",
  "penistone",
  "assyria",
  "assort",
  "rapeseed",
  "cum laude",
  "wankel",
  "fukushima",
  "fukuoka",
  "pussycat",
  "pussy willow",
  "moby dick",
];

// ---------------------------------------------------------------------------------------------------
// Text normalisation

/**
 * The form every matcher starts from: NFKC (full-width and stylised letters become plain ones, "ſ" → "s"),
 * invisible format characters (zero-width spaces, soft hyphens) removed, curly apostrophes straightened,
 * and every run of whitespace one space.
 */
export function normalizeText(text: string): string {
  return text
    .normalize("NFKC")
    .replace(/\p{Cf}+/gu, "")
    .replace(/[\u2018\u2019\u02BC]/gu, "'")
    .replace(/\s+/gu, " ");
}

/** Runs of three or more single letters split by one space or `.-_*` ("f u c k", "s.h.i.t"), joined. */
const SPACED_LETTERS = /(?<![\p{L}\p{N}])\p{L}(?:[ .*_-]\p{L}){2,}(?![\p{L}\p{N}])/gu;

/**
 * Punctuation that obscenity's leet-speak decoding reads as a letter (`!` and `|` as "i", `(` as "c",
 * `/` as "l") unless it stands inside a word ("sh!t"): at a word's edge it is punctuation, and decoded
 * it would glue itself to the word ("pizza!" → "pizzai") and defeat the word-boundary check.
 */
const EDGE_LEET_PUNCTUATION = /\/|[!|(]+(?![\p{L}\p{N}])|(?<![\p{L}\p{N}])[!|(]+/gu;

/**
 * The form terms are matched in: {@link normalizeText}, then lower case, accents on Latin letters
 * dropped, spaced-out letters joined, and leet-like punctuation at word edges made a space. The same
 * function is applied to terms and texts.
 */
export function toMatchingForm(text: string): string {
  return normalizeText(text)
    .toLowerCase()
    .normalize("NFKD")
    .replace(/(\p{Script=Latin})\p{M}+/gu, "$1")
    .normalize("NFKC")
    .replace(SPACED_LETTERS, (run) => run.replace(/[ .*_-]/g, ""))
    .replace(EDGE_LEET_PUNCTUATION, " ")
    .replace(/ {2,}/g, " ");
}

/**
 * Confusable characters and leet-speak decoded as obscenity decodes them ("k1ll" → "kill", "kіll" with
 * a Cyrillic "і" → "kill"), in the words that mix letters with digits, leet symbols or non-ASCII
 * characters; numbers and plain words are kept, so most texts come back unchanged.
 */
export function decodeLeetSpeak(matchingFormText: string): string {
  return matchingFormText.replace(/[\p{L}\p{N}$@!|(]+/gu, (word) =>
    /\p{L}/u.test(word) && /[^a-z]/.test(word) ? applyTransformers(word, LEET_TRANSFORMERS) : word,
  );
}

const LEET_TRANSFORMERS: readonly TransformerContainer[] = [resolveConfusablesTransformer(), resolveLeetSpeakTransformer()];

/** Applies obscenity transformers to a whole string, as its matcher does to the text it searches. */
function applyTransformers(text: string, containers: readonly TransformerContainer[]): string {
  const steps = containers.map((c): ((char: number) => number | undefined) => {
    if ("transform" in c) return c.transform;
    const instance = c.factory(); // a stateful transformer keeps its state in the object its factory makes
    return (char) => instance.transform(char);
  });
  let out = "";
  for (const ch of text) {
    let code: number | undefined = ch.codePointAt(0);
    for (const step of steps) {
      if (code === undefined) break;
      code = step(code);
    }
    if (code !== undefined) out += String.fromCodePoint(code);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Exact terms

/** A set of exact terms, matched in {@link toMatchingForm} text. */
export interface TermMatcher {
  /** Indexes (into the terms given) of the terms found. */
  findAll(matchingFormText: string): Set<number>;
  hasAny(matchingFormText: string): boolean;
}

const OBSCENITY_SPECIAL = /[\\[\]?|]/g;
const ASCII_WORD_CHAR = /[a-z0-9]/;

/**
 * Builds a matcher for exact terms. A term with a letter becomes an obscenity pattern: the term goes
 * through the same normalisation and transformers as the text, is escaped, and gets a word-boundary
 * assertion at each end that is a letter or digit, so "pizza" matches "P1ZZA!" and "piiizza" but not
 * "pizzas". A term without letters ("1234", "$$$") is matched literally as a whole token, since
 * leet-speak decoding would turn it into letters ("$$$" into "s").
 */
export function createTermMatcher(terms: readonly string[]): TermMatcher {
  const patterns: { id: number; pattern: ReturnType<typeof parseRawPattern> }[] = [];
  const literals: { index: number; regExp: RegExp }[] = [];
  terms.forEach((term, index) => {
    const form = toMatchingForm(term).trim();
    if (form === "") throw new Error("is empty once normalised");
    if (!/\p{L}/u.test(form)) {
      literals.push({ index, regExp: new RegExp(`(?<![\\p{L}\\p{N}])${escapeRegExp(form)}(?![\\p{L}\\p{N}])`, "u") });
      return;
    }
    const transformed = applyTransformers(form, englishRecommendedBlacklistMatcherTransformers);
    const start = ASCII_WORD_CHAR.test(transformed.at(0) ?? "") ? "|" : "";
    const end = ASCII_WORD_CHAR.test(transformed.at(-1) ?? "") ? "|" : "";
    patterns.push({ id: index, pattern: parseRawPattern(`${start}${transformed.replace(OBSCENITY_SPECIAL, "\\$&")}${end}`) });
  });
  const matcher =
    patterns.length > 0 ? new RegExpMatcher({ blacklistedTerms: patterns, blacklistMatcherTransformers: englishRecommendedBlacklistMatcherTransformers }) : undefined;
  return {
    findAll(text) {
      const found = new Set<number>();
      for (const m of matcher?.getAllMatches(text) ?? []) found.add(m.termId);
      for (const l of literals) if (l.regExp.test(text)) found.add(l.index);
      return found;
    },
    hasAny(text) {
      return (matcher?.hasMatch(text) ?? false) || literals.some((l) => l.regExp.test(text));
    },
  };
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&");
}

/** Obscenity's English profanity matcher with its recommended transformers, plus a few benign names whitelisted. */
export function createProfanityMatcher(): RegExpMatcher {
  const { blacklistedTerms, whitelistedTerms = [] } = englishDataset.build();
  return new RegExpMatcher({
    blacklistedTerms,
    whitelistedTerms: [...whitelistedTerms, ...EXTRA_PROFANITY_WHITELIST],
    ...englishRecommendedTransformers,
  });
}

// ---------------------------------------------------------------------------------------------------
// Regular expressions

/**
 * Why a regex could backtrack catastrophically, or undefined. Rejected: backreferences, and a group
 * repeated more than once (`*`, `+`, `{n,}`, `{n,m}` with m > 1) that contains a quantifier or an
 * alternation (`(a+)+`, `(\w+\s?)*`, `(a|ab)*`): the shapes whose matching time grows exponentially.
 * A group made optional (`(…)?`) may contain anything. Assumes `source` is valid with the `u` flag.
 */
export function findBacktrackingHazard(source: string): string | undefined {
  interface Group {
    hasQuantifier: boolean;
    hasAlternation: boolean;
  }
  const stack: Group[] = [{ hasQuantifier: false, hasAlternation: false }];
  let lastGroup: Group | undefined; // the group a following quantifier applies to
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    const top = stack[stack.length - 1];
    if (top === undefined) return undefined;
    if (c === "\\") {
      const next = source[i + 1] ?? "";
      if (/[1-9]/.test(next) || next === "k") return "backreferences are not allowed";
      i += 2;
      if (/[pPu]/.test(next) && source[i] === "{") i = source.indexOf("}", i) + 1;
      lastGroup = undefined;
    } else if (c === "[") {
      i++;
      while (i < source.length && source[i] !== "]") i += source[i] === "\\" ? 2 : 1;
      i++;
      lastGroup = undefined;
    } else if (c === "(") {
      stack.push({ hasQuantifier: false, hasAlternation: false });
      i += groupPrefixLength(source, i);
      lastGroup = undefined;
    } else if (c === ")") {
      const group = stack.pop();
      const parent = stack[stack.length - 1];
      if (group === undefined || parent === undefined) return undefined;
      parent.hasQuantifier ||= group.hasQuantifier;
      parent.hasAlternation ||= group.hasAlternation;
      lastGroup = group;
      i++;
    } else if (c === "|") {
      top.hasAlternation = true;
      lastGroup = undefined;
      i++;
    } else if (c === "*" || c === "+" || c === "?" || c === "{") {
      const close = c === "{" ? source.indexOf("}", i) : i;
      const max = c === "*" || c === "+" ? Infinity : c === "?" ? 1 : quantifierMax(source.slice(i + 1, close));
      if (max > 1 && lastGroup !== undefined && (lastGroup.hasQuantifier || lastGroup.hasAlternation)) {
        return "a repeated group contains a quantifier or an alternation (nested quantifiers can backtrack exponentially)";
      }
      top.hasQuantifier = true;
      lastGroup = undefined;
      i = close + 1;
      if (source[i] === "?") i++; // lazy
    } else {
      lastGroup = undefined;
      i++;
    }
  }
  return undefined;
}

function groupPrefixLength(source: string, i: number): number {
  if (source[i + 1] !== "?") return 1;
  if (source[i + 2] === "<" && source[i + 3] !== "=" && source[i + 3] !== "!") return source.indexOf(">", i) - i + 1; // (?<name>
  return source[i + 2] === "<" ? 4 : 3; // (?<= (?<! or (?: (?= (?!
}

function quantifierMax(body: string): number {
  const [min = "", max] = body.split(",");
  if (max === undefined) return Number(min);
  return max === "" ? Infinity : Number(max);
}

/**
 * Compiles a regex item with the `u` and `i` flags, or throws with the reason: invalid syntax, a shape
 * that can backtrack catastrophically ({@link findBacktrackingHazard}), or a match on empty text (which
 * would match every text). `flags` (always with `g`) are for the built-in lexicon, whose lower-case
 * patterns run on lower-cased text without `u` and `i`, several times faster; the syntax is still
 * checked with `u`.
 */
export function compileGuardedRegExp(source: string, flags = "giu"): RegExp {
  let regExp: RegExp;
  try {
    new RegExp(source, "u");
    regExp = new RegExp(source, flags);
  } catch (error) {
    throw new Error(`is not a valid regular expression (${(error as Error).message})`);
  }
  const hazard = findBacktrackingHazard(source);
  if (hazard !== undefined) throw new Error(`is refused: ${hazard}`);
  for (const probe of ["", " ", "x", "x y", "0"]) {
    for (const m of probe.matchAll(regExp)) if (m[0] === "") throw new Error("is refused: it matches empty text");
  }
  return regExp;
}

/**
 * The windows a regex is run over: at most {@link REGEX_WINDOW_CHARS} (plus slack to end after a
 * space), starting every {@link REGEX_WINDOW_STEP_CHARS}. A regex sees the text before its window
 * (for `\b` and lookbehind) but nothing after it, so its work per window is bounded, and any match of
 * up to about 380 characters lies wholly inside some window.
 */
export function regexWindows(text: string): { start: number; end: number }[] {
  const length = text.length;
  const windows: { start: number; end: number }[] = [];
  for (let start = 0; ; start += REGEX_WINDOW_STEP_CHARS) {
    if (start + REGEX_WINDOW_CHARS >= length) {
      windows.push({ start, end: length });
      return windows;
    }
    const nominal = start + REGEX_WINDOW_CHARS;
    let end = nominal;
    for (let i = nominal; i >= nominal - REGEX_WINDOW_SLACK_CHARS; i--) {
      if (text[i] === " ") {
        end = i + 1;
        break;
      }
    }
    windows.push({ start, end });
  }
}

/** Counts regex window tests; every {@link TESTS_PER_YIELD} it yields to the event loop and checks the signal. */
export class WorkPacer {
  private tests = 0;
  constructor(private readonly signal: AbortSignal) {}
  async tick(): Promise<void> {
    if (++this.tests % TESTS_PER_YIELD !== 0) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.signal.throwIfAborted();
  }
}

/** Whether a guarded regex (compiled with `g`) matches anywhere in the text, window by window. */
export async function testInWindows(regExp: RegExp, text: string, pacer: WorkPacer): Promise<boolean> {
  for (const { start, end } of regexWindows(text)) {
    regExp.lastIndex = start;
    const found = regExp.test(end === text.length ? text : text.slice(0, end));
    regExp.lastIndex = 0;
    if (found) return true;
    await pacer.tick();
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------
// The classifier

interface CompiledBlocklist {
  id: string;
  terms: TermMatcher | undefined;
  regExps: RegExp[];
}

function compileBlocklist(list: Blocklist): CompiledBlocklist {
  if (!BLOCKLIST_ID.test(list.id)) throw new Error(`Blocklist id ${JSON.stringify(list.id)} is invalid: use letters, digits and - . _ ~`);
  if (list.items.length > MAX_BLOCKLIST_ITEMS) throw new Error(`Blocklist "${list.id}" has ${list.items.length} items; the most is ${MAX_BLOCKLIST_ITEMS}`);
  const terms: string[] = [];
  const regExps: RegExp[] = [];
  for (const item of list.items) {
    const where = `Blocklist "${list.id}" item ${JSON.stringify(item.pattern)}`;
    if (item.pattern.trim() === "") throw new Error(`${where} is empty`);
    if (item.pattern.length > MAX_BLOCKLIST_ITEM_CHARS) throw new Error(`${where.slice(0, 80)}… is longer than ${MAX_BLOCKLIST_ITEM_CHARS} characters`);
    if (item.isRegex) {
      try {
        regExps.push(compileGuardedRegExp(item.pattern));
      } catch (error) {
        throw new Error(`${where} ${(error as Error).message}`);
      }
    } else {
      terms.push(item.pattern);
    }
  }
  let matcher: TermMatcher | undefined;
  try {
    matcher = terms.length > 0 ? createTermMatcher(terms) : undefined;
  } catch (error) {
    throw new Error(`Blocklist "${list.id}" has a term that ${(error as Error).message}`);
  }
  return { id: list.id, terms: matcher, regExps };
}

/**
 * The blocklist classifier: `profanity` when enabled, and one {@link BlocklistHit} per custom blocklist
 * with an item in the text. Throws at construction on an invalid blocklist (with its id and item).
 */
export function createBlocklistClassifier(options: BlocklistClassifierOptions): TextClassifier {
  const ids = new Set<string>();
  for (const list of options.blocklists) {
    if (ids.has(list.id)) throw new Error(`Blocklist id "${list.id}" is used twice`);
    ids.add(list.id);
  }
  const lists = options.blocklists.map(compileBlocklist);
  const profanity = options.profanity ? createProfanityMatcher() : undefined;
  return {
    name: "blocklist",
    async classify(text: string, _role: TextRole, signal: AbortSignal): Promise<Classification> {
      signal.throwIfAborted();
      const regexForm = normalizeText(text);
      const termForm = toMatchingForm(text);
      const pacer = new WorkPacer(signal);
      const hits: BlocklistHit[] = [];
      for (const list of lists) {
        if (list.terms?.hasAny(termForm) === true || (await someRegExpMatches(list.regExps, regexForm, pacer))) hits.push({ blocklistId: list.id });
        signal.throwIfAborted();
      }
      return {
        severities: {},
        profanity: profanity === undefined ? undefined : profanity.hasMatch(termForm),
        blocklistHits: lists.length > 0 ? hits : undefined,
      };
    },
  };
}

async function someRegExpMatches(regExps: readonly RegExp[], text: string, pacer: WorkPacer): Promise<boolean> {
  for (const regExp of regExps) if (await testInWindows(regExp, text, pacer)) return true;
  return false;
}
