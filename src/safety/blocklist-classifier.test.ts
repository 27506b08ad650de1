import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  compileGuardedRegExp,
  createBlocklistClassifier,
  findBacktrackingHazard,
  REGEX_WINDOW_CHARS,
  REGEX_WINDOW_STEP_CHARS,
  regexWindows,
  toMatchingForm,
  type Blocklist,
} from "./blocklist-classifier.ts";

const never = new AbortController().signal;

function term(pattern: string) {
  return { pattern, isRegex: false };
}
function regex(pattern: string) {
  return { pattern, isRegex: true };
}

async function hits(blocklists: readonly Blocklist[], text: string): Promise<string[]> {
  const result = await createBlocklistClassifier({ profanity: false, blocklists }).classify(text, "prompt", never);
  return (result.blocklistHits ?? []).map((h) => h.blocklistId);
}

describe("blocklist classifier: profanity", () => {
  const classifier = createBlocklistClassifier({ profanity: true, blocklists: [] });
  const profane = async (text: string) => (await classifier.classify(text, "completion", never)).profanity;

  it("finds profanity through leet-speak, repeated letters, confusables and spacing", async () => {
    for (const text of ["well fuuuuuck", "what a load of sh1t", "$h!t happens", "ｆｕｃｋ", "f u c k i n g hell", "s.h.i.t", "ſhit", "f\u200Buck"]) {
      assert.equal(await profane(text), true, text);
    }
  });

  it("leaves benign look-alikes alone", async () => {
    for (const text of ["Scunthorpe United won", "the assassin's creed", "a cocktail party", "data analysis", "flame retardant foam", "Fukushima prefecture", "shitake mushrooms", "Dickens wrote it"]) {
      assert.equal(await profane(text), false, text);
    }
  });

  it("reports no severities, and no profanity field when profanity is off", async () => {
    const result = await classifier.classify("fuck", "prompt", never);
    assert.deepEqual(result.severities, {});
    assert.equal(result.blocklistHits, undefined, "no blocklists configured: not assessed");
    const off = await createBlocklistClassifier({ profanity: false, blocklists: [] }).classify("fuck", "prompt", never);
    assert.equal(off.profanity, undefined);
  });
});

describe("blocklist classifier: exact terms", () => {
  const pizza: Blocklist = { id: "pizza", items: [term("pizza")] };

  it("matches the term as a whole word through obscenity's normalisation", async () => {
    for (const text of ["I love pizza!", "I love P1ZZA!", "piiizza time", "(pizza)", "pizza/pasta", "ｐｉｚｚａ", "pízza", "p i z z a"]) {
      assert.deepEqual(await hits([pizza], text), ["pizza"], text);
    }
    for (const text of ["pizzas for all", "a pizzeria", "pita bread", "hello"]) assert.deepEqual(await hits([pizza], text), [], text);
  });

  it("matches multi-word terms across any whitespace, and terms ending in punctuation", async () => {
    const lists: Blocklist[] = [{ id: "spam", items: [term("free money"), term("C++")] }];
    assert.deepEqual(await hits(lists, "get FREE\n\n  money now"), ["spam"]);
    assert.deepEqual(await hits(lists, "I write c++ daily"), ["spam"]);
    assert.deepEqual(await hits(lists, "free for money"), []);
  });

  it("matches a term without letters literally (leet-speak would turn '$$$' into 's')", async () => {
    const lists: Blocklist[] = [{ id: "signs", items: [term("$$$"), term("1234")] }];
    assert.deepEqual(await hits(lists, "make $$$ fast"), ["signs"]);
    assert.deepEqual(await hits(lists, "pin 1234"), ["signs"]);
    assert.deepEqual(await hits(lists, "it is what it is"), []);
    assert.deepEqual(await hits(lists, "pin 12345"), []);
  });

  it("gives one hit per list with a match, in configuration order", async () => {
    const lists: Blocklist[] = [
      { id: "food", items: [term("pizza"), term("pasta")] },
      { id: "brands", items: [term("acme")] },
      { id: "other", items: [term("anchovy")] },
    ];
    assert.deepEqual(await hits(lists, "acme pizza and pasta"), ["food", "brands"]);
    assert.deepEqual(await hits(lists, "nothing here"), []);
  });
});

describe("blocklist classifier: regex items", () => {
  it("runs JavaScript regexes case-insensitively on NFKC text with whitespace collapsed", async () => {
    const lists: Blocklist[] = [{ id: "rx", items: [regex("\\bfree\\s+v[i1]agra\\b"), regex("order #\\d{6}")] }];
    assert.deepEqual(await hits(lists, "FREE   V1AGRA here"), ["rx"]);
    assert.deepEqual(await hits(lists, "ｆｒｅｅ viagra"), ["rx"]);
    assert.deepEqual(await hits(lists, "re: order #123456"), ["rx"]);
    assert.deepEqual(await hits(lists, "freeviagra, order #12345"), []);
  });

  it("refuses invalid regexes and shapes that can backtrack catastrophically, naming the list and item", () => {
    const make = (pattern: string) => () => createBlocklistClassifier({ profanity: false, blocklists: [{ id: "mine", items: [regex(pattern)] }] });
    assert.throws(make("(unclosed"), /Blocklist "mine" item "\(unclosed" is not a valid regular expression/);
    assert.throws(make("(a+)+$"), /Blocklist "mine" item "\(a\+\)\+\$" is refused: a repeated group/);
    assert.throws(make("(\\w+\\s?)*x"), /is refused: a repeated group/);
    assert.throws(make("(a|ab)*c"), /is refused: a repeated group/);
    assert.throws(make("(a)\\1"), /backreferences/);
    assert.throws(make("x*"), /matches empty text/);
    assert.doesNotThrow(make("(?:foo|bar)?baz"));
    assert.doesNotThrow(make("(ab)+c"));
    assert.doesNotThrow(make("\\p{L}{3,}\\d+"));
  });

  it("classifies nested quantifiers only where a repeated group holds a quantifier or an alternation", () => {
    assert.match(findBacktrackingHazard("(?:(?:a|b)c)+") ?? "", /repeated group/);
    assert.match(findBacktrackingHazard("(a+){2,5}") ?? "", /repeated group/);
    assert.equal(findBacktrackingHazard("(a+){1}"), undefined);
    assert.equal(findBacktrackingHazard("\\u{41}{3}(?<name>x)[(+]+"), undefined);
    assert.equal(findBacktrackingHazard("(?<=a)b+"), undefined);
    assert.throws(() => compileGuardedRegExp("[z-a]"), /not a valid regular expression/);
  });

  it("refuses malformed blocklists", () => {
    const make = (lists: Blocklist[]) => () => createBlocklistClassifier({ profanity: false, blocklists: lists });
    assert.throws(make([{ id: "no spaces", items: [] }]), /Blocklist id "no spaces" is invalid/);
    assert.throws(make([{ id: "a", items: [] }, { id: "a", items: [] }]), /used twice/);
    assert.throws(make([{ id: "a", items: [term("  ")] }]), /item "  " is empty/);
    assert.throws(make([{ id: "a", items: [term("x".repeat(1001))] }]), /longer than 1000 characters/);
    assert.throws(make([{ id: "a", items: [term("!!!")] }]), /Blocklist "a" has a term that is empty once normalised/);
  });
});

describe("blocklist classifier: long texts", () => {
  it("covers the whole text with bounded, overlapping regex windows", () => {
    const text = "lorem ipsum ".repeat(1000);
    const windows = regexWindows(text);
    assert.equal(windows[0]?.start, 0);
    assert.equal(windows.at(-1)?.end, text.length);
    for (const [i, w] of windows.entries()) {
      assert.ok(w.end - w.start <= REGEX_WINDOW_CHARS + 1, `window ${i} is bounded`);
      const next = windows[i + 1];
      if (next !== undefined) assert.ok(w.end - next.start >= REGEX_WINDOW_CHARS - REGEX_WINDOW_STEP_CHARS - 128, `window ${i} overlaps the next`);
    }
    assert.deepEqual(regexWindows("short"), [{ start: 0, end: 5 }]);
  });

  it("finds items anywhere in a long text, including across a window edge", async () => {
    const lists: Blocklist[] = [{ id: "rx", items: [regex("\\bsecret code \\d{4}\\b")] }, { id: "terms", items: [term("pizza")] }];
    const filler = "lorem ipsum ".repeat(20_000);
    assert.deepEqual(await hits(lists, `${filler}secret code 1234 and pizza`), ["rx", "terms"]);
    const edge = `${"x".repeat(REGEX_WINDOW_CHARS - 6)} secret code 9876 ${"y".repeat(3000)}`; // straddles the first window's end
    assert.deepEqual(await hits(lists, edge), ["rx"]);
    assert.deepEqual(await hits(lists, `${filler}secret code 12345`), []);
  });

  it("keeps \\b honest at window edges: a window sees the text before it", async () => {
    const lists: Blocklist[] = [{ id: "rx", items: [regex("\\bcode\\b")] }];
    const text = `${"a".repeat(REGEX_WINDOW_STEP_CHARS)}code ${"b ".repeat(2000)}`; // the second window starts at "code", inside "a…acode"
    assert.deepEqual(await hits(lists, text), []);
  });
});

describe("blocklist classifier: abort", () => {
  const lists: Blocklist[] = [{ id: "rx", items: [regex("never-present-\\d+")] }];

  it("rejects with the signal's reason when the signal is already aborted", async () => {
    const controller = new AbortController();
    const reason = new Error("deadline");
    controller.abort(reason);
    const classifier = createBlocklistClassifier({ profanity: true, blocklists: lists });
    await assert.rejects(classifier.classify("hello", "prompt", controller.signal), (error) => error === reason);
  });

  it("stops a long classification when the signal aborts while it runs", async () => {
    const controller = new AbortController();
    const reason = new Error("timeout");
    const classifier = createBlocklistClassifier({ profanity: false, blocklists: lists });
    const pending = classifier.classify("lorem ipsum ".repeat(30_000), "prompt", controller.signal);
    controller.abort(reason);
    await assert.rejects(pending, (error) => error === reason);
  });
});

describe("toMatchingForm", () => {
  it("is one function for terms and texts: NFKC, lower case, Latin accents off, spaced letters joined", () => {
    assert.equal(toMatchingForm("Ｆｒｅｅ  Café\tNOW"), "free cafe now");
    assert.equal(toMatchingForm("the U S A and f.u.c.k"), "the usa and fuck");
    assert.equal(toMatchingForm("a b and c d"), "a b and c d", "runs of two letters stay apart");
    assert.equal(toMatchingForm("sh!t! (yes)"), "sh!t yes)");
  });
});
