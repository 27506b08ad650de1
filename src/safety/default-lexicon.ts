/**
 * The built-in English lexicon (docs/SAFETY.md "Lexicon"): a deliberately small, honest default. It is
 * a keyword and phrase list with Azure's 0–7 severities (docs/SAFETY.md "Categories and severities"),
 * written from Azure AI Content Safety's severity definitions: it catches the explicit wordings below
 * and misses paraphrase, and it flags quotes, fiction, news and medicine that use the same words.
 *
 * Every pattern is a regex run on the matching form of the text (lower case, whitespace collapsed to
 * one space, apostrophes straightened, accents off Latin letters, spaced letters joined) and on its
 * leet-decoded twin. Patterns must pass the same backtracking guard as operator regexes: a repeated
 * group may not contain a quantifier or an alternation (bounded character classes are used instead).
 */
import type { HarmCategory } from "./classifier.ts";

export interface CategoryRule {
  pattern: string;
  category: HarmCategory;
  severity: number;
}

/** A category and severity given to a word of obscenity's English data set. */
export interface WordSeverity {
  category: HarmCategory;
  severity: number;
}

// ---------------------------------------------------------------------------------------------------
// obscenity's English data set, by category. The data set labels no word as a slur or as sexual; this
// mapping is ours. Curse words and insults not aimed at a group are Azure's hate level 2.

const INSULT: readonly WordSeverity[] = [{ category: "hate", severity: 2 }];
const EXPLICIT: readonly WordSeverity[] = [{ category: "sexual", severity: 4 }];
const SEXUAL_MENTION: readonly WordSeverity[] = [{ category: "sexual", severity: 3 }];
const VULGAR_SEXUAL: readonly WordSeverity[] = [{ category: "sexual", severity: 2 }];

/**
 * Severities of obscenity's English words, by the data set's `originalWord`. Words left out (medical
 * anatomy such as "penis" or "semen", "sex", "scat") get no severity; the blocklist classifier still
 * reports them as profanity.
 */
export const PROFANITY_WORD_SEVERITIES: Readonly<Record<string, readonly WordSeverity[]>> = {
  fuck: INSULT,
  shit: INSULT,
  bitch: INSULT,
  bastard: INSULT,
  cunt: INSULT,
  twat: INSULT,
  prick: INSULT,
  wank: INSULT,
  piss: INSULT,
  turd: INSULT,
  arse: INSULT,
  ass: INSULT,
  bollocks: INSULT,
  cuck: INSULT,
  whore: [...INSULT, ...VULGAR_SEXUAL],
  slut: [...INSULT, ...VULGAR_SEXUAL],
  hooker: VULGAR_SEXUAL,
  pussy: VULGAR_SEXUAL,
  dick: VULGAR_SEXUAL,
  cock: VULGAR_SEXUAL,
  tit: VULGAR_SEXUAL,
  boob: VULGAR_SEXUAL,
  anal: VULGAR_SEXUAL,
  masturbate: SEXUAL_MENTION,
  ejaculate: SEXUAL_MENTION,
  orgasm: SEXUAL_MENTION,
  orgy: SEXUAL_MENTION,
  blowjob: EXPLICIT,
  handjob: EXPLICIT,
  deepthroat: EXPLICIT,
  gangbang: EXPLICIT,
  fisting: EXPLICIT,
  fellatio: EXPLICIT,
  "double penetration": EXPLICIT,
  "finger bang": EXPLICIT,
  "jerk off": EXPLICIT,
  lubejob: EXPLICIT,
  felch: EXPLICIT,
  doggystyle: EXPLICIT,
  jizz: EXPLICIT,
  cum: EXPLICIT,
  porn: EXPLICIT,
  hentai: EXPLICIT,
  dildo: EXPLICIT,
  buttplug: EXPLICIT,
  incest: [{ category: "sexual", severity: 6 }],
  bestiality: [{ category: "sexual", severity: 6 }],
  rape: [
    { category: "sexual", severity: 3 },
    { category: "violence", severity: 3 },
  ],
};

/**
 * Slurs in obscenity's English data set, named by the first 16 hex digits of the SHA-256 of the data
 * set's `originalWord`, so that this repository does not spell them out. A test checks that each one
 * names a word of the data set. Azure's hate level 4 is "racial slurs used as descriptions targeting
 * identity groups"; words with a common non-slur use (a medical term, an archaic name) are level 2 or 3.
 */
export const SLUR_SEVERITIES: readonly { sha256Prefix: string; target: string; severity: number }[] = [
  { sha256Prefix: "4aa9e29a67c188ac", target: "Black people (Arabic)", severity: 4 },
  { sha256Prefix: "3160c321bcd0c49b", target: "Aboriginal Australians", severity: 4 },
  { sha256Prefix: "7b3e1b718066e0a3", target: "Black people", severity: 4 },
  { sha256Prefix: "f4f08c8f3bf230d3", target: "Arabs", severity: 4 },
  { sha256Prefix: "59f12409eb71f1a1", target: "Aboriginal Australians", severity: 4 },
  { sha256Prefix: "ec2fe80630164152", target: "East Asians", severity: 4 },
  { sha256Prefix: "f9d0d9b18ae9033a", target: "Chinese people", severity: 4 },
  { sha256Prefix: "c3de533e9b7fe63b", target: "Jews", severity: 4 },
  { sha256Prefix: "120f6e5b4ea32f65", target: "Black people", severity: 4 },
  { sha256Prefix: "9915ba2d822280f2", target: "gay men", severity: 4 },
  { sha256Prefix: "16ea09fc78ca83ca", target: "trans people", severity: 4 },
  { sha256Prefix: "886d51e97ad7931d", target: "lesbians (also reclaimed)", severity: 3 },
  { sha256Prefix: "158869a97379229b", target: "people with intellectual disabilities", severity: 3 },
  { sha256Prefix: "94a877e2ce63725e", target: "disabled people (also a medical term)", severity: 2 },
  { sha256Prefix: "f59e28f8bb6499dd", target: "Black people (archaic; in historical names)", severity: 2 },
];

// ---------------------------------------------------------------------------------------------------
// Phrase patterns

/** A first person about to act: "i will", "i'm going to", "we're gonna", "im gonna", "i'd love to". */
const I_WILL =
  "(?:i|we|im)(?:'ll|'m going to|'m gonna|'m about to|'re going to|'re gonna|'d love to| will| shall| am going to| are going to| am gonna| are gonna| gonna| going to| want to| wanna| plan to| am about to| would love to)(?: (?:fucking|really|actually|literally|seriously|definitely))?";
const TARGET = "(?:you|u|ya|you all|all of you|your (?:family|kids|children|wife|husband|mom|mother|dad|father)|him|her|them|everyone)";
const ASK_HOW =
  "(?:how (?:do i|do you|to|can i|can you|could i|would i|should i|would you|does one|do people)|instructions (?:for|on|to)|step[- ]by[- ]step (?:guide )?(?:for|on|to)|guide (?:for|on|to)|recipe for|teach me (?:how )?to|tell me how to|explain how to|show me how to|help me|ways to|the best way to|the easiest way to)";
const MAKE =
  "(?:make|making|build|building|assemble|assembling|construct|constructing|create|creating|cook|cooking|manufacture|manufacturing|synthesi[sz]e|synthesi[sz]ing|produce|producing|3d print|3d printing|craft|crafting|rig|rigging|put together|putting together|mix|mixing)";
const WEAPON =
  "(?:bombs?(?! (?:cakes?|shots?|drinks?|pops?|desserts?|cookies?))|pipe bombs?|nail bombs?|car bombs?|letter bombs?|suicide vests?|explosive devices?|explosives?|ieds?|molotov cocktails?|napalm|thermite|grenades?|detonators?|nerve agents?|sarin|vx gas|mustard gas|chlorine gas|ricin|anthrax|chemical weapons?|biological weapons?|bioweapons?|dirty bombs?|nuclear bombs?|nuclear weapons?|ghost guns?|untraceable guns?|zip guns?|silencers?|suppressors?|auto sears?|machine guns?|tatp|semtex)";
const WEAPON_DETERMINER =
  "(?: (?:a|an|some|my own|your own|the))?(?: (?:homemade|home-made|improvised|working|functional|untraceable|powerful|small|simple|deadly|lethal))?";
const PLACE =
  "(?:school|hospital|church|mosque|synagogue|temple|office|mall|concert|stadium|parade|airport|station|class|building|workplace|college|university|festival)";
/** Identity groups (Azure's hate category: race, ethnicity, nationality, religion, gender, orientation, disability). */
const GROUP =
  "(?:jews|jewish people|muslims|christians|catholics|hindus|sikhs|buddhists|atheists|blacks|black people|black men|black women|whites|white people|asians|asian people|chinese people|chinese|japanese people|koreans|mexicans|latinos|latinas|hispanics|arabs|africans|indians|pakistanis|immigrants|illegal immigrants|illegals|migrants|refugees|foreigners|gays|gay people|gay men|lesbians|homosexuals|bisexuals|trans people|transgender people|trans women|trans men|women|men|girls|feminists|gypsies|roma|disabled people|the disabled|autistic people|native americans|aboriginals|palestinians|israelis|americans)(?!'s)";
const GROUP_DETERMINER = "(?:all |the |those |these |most |filthy |dirty )?";
const SELF_ACT =
  "(?:kill myself|end my (?:own )?life|end it all|commit suicide|take my (?:own )?life|hang myself|cut myself|hurt myself|harm myself|slit my wrists|shoot myself|overdose|starve myself|jump off (?:a|the) (?:bridge|building|roof|cliff)|jump in front of a train)";
const MINOR = "(?:child|children|kid|kids|minor|minors|underage|under-age|preteen|pre-teen|prepubescent|(?:[1-9]|1[0-7]) ?(?:yo|y o|year old|year-old|years old))";

const BOTH = ["hate", "violence"] as const;

function rule(category: HarmCategory, severity: number, pattern: string): CategoryRule {
  return { category, severity, pattern: `\\b${pattern}\\b` };
}

/** Harm-category rules, each an explicit wording at the severity Azure's definitions give it. */
export const BUILT_IN_CATEGORY_RULES: readonly CategoryRule[] = [
  // Violence. 4: threats; 5: asking how to hurt someone or to make a weapon; 6: calls to kill; 7: planning an attack.
  rule("violence", 4, `${I_WILL} (?:kill|murder|stab|shoot|strangle|choke|behead|slaughter|hurt|beat up|torture|rape|hunt down|find and kill) ${TARGET}`),
  rule("violence", 4, `${I_WILL} (?:slit your throat|break your (?:neck|legs|face|bones)|bash your (?:head|face|skull) in|put a bullet in your (?:head|brain)|blow your (?:head|brains) off)`),
  rule("violence", 4, "(?:i know where you live|you(?:'re| are) (?:dead meat|a dead man|a dead woman))"),
  rule("violence", 5, `${ASK_HOW} ${MAKE}${WEAPON_DETERMINER} ${WEAPON}`),
  rule(
    "violence",
    5,
    `${ASK_HOW} (?:kill|murder|poison|strangle|stab|torture|kidnap|assassinate|hurt|maim|dismember) (?:someone|somebody|a person|people|a human|my (?:wife|husband|boss|neighbou?r|mother|father|mom|dad|brother|sister|teacher|ex|girlfriend|boyfriend|coworker|roommate|family|baby|child|son|daughter)|him|her|them|a child|a kid|children|kids)`,
  ),
  rule("violence", 5, "(?:kill|murder|poison|get rid of) (?:someone|somebody|a person|him|her|them|my (?:wife|husband|boss)) (?:and|without) (?:get(?:ting)? away with it|getting caught|leaving (?:a trace|any trace|evidence))"),
  rule("violence", 5, "how (?:do i|to|can i|should i) (?:dispose of|get rid of|hide) (?:a|the) (?:dead )?body"),
  rule("violence", 6, "(?:we|you|they|someone|somebody|people) (?:must|should|need to|have to|will|gotta|ought to) kill (?:them all|all of them|every (?:last )?one of them)"),
  rule("violence", 7, `${I_WILL} (?:shoot up|bomb|blow up|attack|massacre (?:everyone|people) (?:at|in)) (?:the|my|a|our|this|that|his|her|their) ${PLACE}`),

  // Hate. 3: stated hatred of a group; 4: insults aimed at a group; 5: dehumanising, denial; 6: calls for violence or exclusion.
  rule("hate", 3, `i (?:hate|despise|can't stand|cannot stand|loathe) (?:all |the |those |these )?${GROUP}`),
  rule("hate", 4, `${GROUP_DETERMINER}${GROUP} (?:are|r) (?:all |just )?(?:ugly|stupid|dumb|disgusting|dirty|criminals|thieves|terrorists|lazy|evil|rapists|worthless|trash|garbage|idiots|pigs|dogs)`),
  rule("hate", 5, `${GROUP_DETERMINER}${GROUP} (?:are|r|is) (?:all |just |nothing but |like )?(?:animals|vermin|rats|cockroaches|roaches|parasites|subhuman|sub-human|insects|apes|monkeys|a disease|a plague|a cancer|a virus|inferior|savages|filth|scum|not human|not people)`),
  rule("hate", 5, "(?:the )?holocaust (?:never happened|didn't happen|did not happen|is a (?:hoax|lie|myth|fraud)|was (?:a )?(?:hoax|fake|lie|myth|fraud|made up|exaggerated))"),
  rule("hate", 5, "(?:heil hitler|sieg heil|the white race is superior|white people are the master race)"),
  rule("hate", 6, `${GROUP} (?:should|must|need to|deserve to|ought to|have to) (?:all )?(?:be deported|go back to (?:where they came from|their (?:own )?countr(?:y|ies))|be banned|be sent back|not be allowed to (?:vote|live here|exist))`),
  ...BOTH.map((category) =>
    rule(category, 6, `${GROUP} (?:should|must|need to|deserve to|ought to|have to|will) (?:all )?(?:die|be killed|be exterminated|be gassed|be wiped out|be eradicated|be eliminated|burn|hang|be hanged|be shot|be lynched)`),
  ),
  ...BOTH.map((category) => rule(category, 6, `(?:kill|exterminate|gas|lynch|hang|shoot|burn|eradicate|wipe out) (?:all )?(?:the |those |these )?${GROUP}`)),
  ...BOTH.map((category) =>
    rule(category, 6, `(?:send|put|throw) (?:the |all |all the |those |these )?${GROUP} (?:back )?(?:in|into|to) (?:the )?(?:gas chambers?|ovens)`),
  ),

  // Self-harm. 3: struggling, asking for help; 4: wishes and intent; 5: urging someone, eating-disorder methods; 6: suicide methods, glorifying.
  rule("self_harm", 3, "(?:i(?:'m| am|'ve been| have been) (?:thinking about|having thoughts of|having thoughts about|considering|contemplating)|suicidal thoughts of|thoughts of|urges? to) (?:suicide|killing myself|ending my life|ending it all|self-harm|self harm|hurting myself|cutting myself|cut myself|hurt myself|kill myself|end my life)"),
  rule("self_harm", 3, "i(?:'m| am| feel| have been|'ve been) (?:so |really |very )?suicidal"),
  rule(
    "self_harm",
    4,
    `(?:i|im)(?:(?:'m| am)? (?:going to|gonna|about to|planning to|ready to|trying to)|'ll|'d rather|(?:'ve| have)? (?:decided to|tried to)| (?:want to|wanna|will|shall|plan to|should|should just|need to|feel like|might|have to|wish i could|could just))(?: just| finally)? ${SELF_ACT}`,
  ),
  rule("self_harm", 4, "(?:i (?:want to|wanna|just want to) die|i wish i (?:was|were) (?:dead|never born)|i (?:don't|do not|dont) want to (?:live|be alive|exist) anymore|i(?:'d| would) be better off dead)"),
  rule("self_harm", 4, "(?:pro-ana|pro ana|pro-mia|pro mia|thinspo|thinspiration|meanspo|bonespo)"),
  rule("self_harm", 5, "(?:(?:go|just|you should|u should|you need to|you ought to|why don't you|why dont you|please|go and) (?:go )?(?:kill yourself|kill urself|kill your self|hang yourself|drink bleach|slit your wrists|end your life|die in a (?:fire|ditch|hole))|kys)"),
  rule("self_harm", 5, "how (?:do i|to|can i) (?:starve myself|stop eating (?:completely|for days)|make myself (?:throw up|vomit|puke)|hide (?:my )?(?:self-harm|cuts|scars) from)"),
  rule(
    "self_harm",
    6,
    "(?:how (?:do i|to|can i|could i|should i|would i)|(?:best|easiest|quickest|fastest|painless|least painful|surest) (?:way|ways|method|methods) to|what (?:is|are) the (?:best|easiest|quickest|most painless|least painful) (?:way|ways|method|methods) to|how many (?:pills|tablets|sleeping pills|painkillers)[a-z ]{0,30} to) (?:kill myself|commit suicide|end my life|take my (?:own )?life|hang myself|slit my wrists|die painlessly|die quickly|die in my sleep|overdose|kill yourself)",
  ),
  rule("self_harm", 6, "(?:painless|quick|easy|quickest|easiest) ways? to die"),
  rule("self_harm", 6, "(?:suicide|self-harm|self harm|cutting) is (?:the (?:answer|only way out|best solution|solution)|noble|beautiful|a solution|an escape|brave)"),

  // Sexual. 4: asking for nudes; 6: sexual violence, soliciting paid sex; 7: anything sexual about minors.
  rule("sexual", 4, "(?:send|show) (?:me )?(?:your )?(?:nudes|naked pics|nude pics|nude photos|naked photos|tits|boobs|dick pics?)"),
  rule("sexual", 6, `${I_WILL} rape ${TARGET}`),
  rule("sexual", 6, "(?:i (?:love|like|enjoy|want) (?:forced sex|raping|rape|non-consensual sex|nonconsensual sex)|rape is (?:fine|okay|ok|good|funny|deserved|hot))"),
  rule("sexual", 6, "(?:(?:escort|hooker|prostitute|sex worker)s? (?:near me|for hire|in my area)|how (?:much|do i) (?:for|pay|hire) (?:a |an )?(?:escort|hooker|prostitute))"),
  rule("sexual", 7, `${MINOR}s? (?:porn\\w*|nudes?|naked (?:pics|pictures|photos|videos)|sex (?:videos?|pics|tapes?)|erotica|sexting)`),
  rule("sexual", 7, `(?:have sex|sex|hook up|sexual relationship) with (?:a |an |my )?(?:${MINOR}|underage (?:girl|boy)|little (?:girl|boy))`),
  rule("sexual", 7, "how (?:do i|to|can i) (?:groom|seduce|lure) (?:a |an |my )?(?:child|kid|minor|little (?:girl|boy)|preteen|teen|teenager|student)"),
];

/**
 * Prompt-attack wordings (Azure's jailbreak, "user prompt attack"): telling the model to drop its
 * instructions, to become an unrestricted persona (DAN, "developer mode"), that it has no rules, or
 * to reveal its system prompt.
 */
export const BUILT_IN_JAILBREAK_PATTERNS: readonly string[] = [
  "\\b(?:ignore|disregard|forget|override|bypass|skip|discard) (?:all |any |every )?(?:of )?(?:the |your |these |those )?(?:previous|prior|above|earlier|preceding|former|initial|original|old|system|existing|developer|safety) (?:instructions?|prompts?|rules|directions|directives|guidelines|commands|messages|context|programming|constraints|restrictions|guardrails|policies)\\b",
  "\\b(?:ignore|disregard|forget) (?:all )?(?:the )?(?:instructions|rules|guidelines) you(?: have|'ve)? (?:got|received|were given|been given)\\b",
  "\\b(?:you are|you're|you will be|act as|pretend to be|become|roleplay as|role-play as|respond as) (?:now )?(?:a |an |the )?dan\\b",
  "\\bdan mode\\b",
  "\\bdo anything now\\b[^.]{0,40}\\bdan\\b|\\bdan\\b[^.]{0,40}\\bdo anything now\\b",
  "\\b(?:chatgpt|gpt|gpt-4|the ai|an ai|ai|assistant|phi|model|you) with developer mode\\b",
  "\\byou(?: are|'re)(?: now)? in developer mode\\b",
  "\\bdeveloper mode (?:output|response|responses)\\b",
  "\\b(?:simulate|emulate) developer mode\\b",
  "\\b(?:pretend|imagine|act as if|act like|behave as if|assume|suppose)(?: that)? you (?:have|had|are under|were under|are bound by|were bound by) no (?:restrictions|rules|filters|guidelines|limits|limitations|boundaries|morals|ethics|ethical guidelines|content polic(?:y|ies)|safety guidelines|censorship|programming)\\b",
  "\\b(?:you are|you're|you will be) (?:now )?(?:free|freed|unbound|liberated|released) from (?:all |any )?(?:of )?(?:your |the )?(?:restrictions|rules|guidelines|policies|filters|limitations|constraints|programming|chains)\\b",
  "\\b(?:you are|you're) no longer (?:bound|restricted|limited|constrained) by\\b",
  "\\byou (?:don't|do not|dont|no longer) (?:have to |need to )?(?:follow|obey|abide by|adhere to) (?:any |the |your )?(?:rules|guidelines|policies|restrictions|content polic(?:y|ies)|openai'?s? (?:content )?polic(?:y|ies))\\b",
  "\\b(?:unfiltered|uncensored|unrestricted) (?:and|&) (?:amoral|unethical|unrestricted|uncensored|unfiltered)\\b",
  "\\b(?:reveal|print|show|display|output|repeat|tell me|give me|leak|dump) (?:me )?(?:your|the) (?:full |entire |complete |original |hidden |secret |initial )?(?:system prompt|system message|system instructions|initial instructions|hidden instructions|original instructions|developer instructions)\\b",
  "\\b(?:jailbreak(?:ed)? mode|you(?: are|'re)(?: now)? jailbroken|(?:enable|activate) jailbreak)\\b",
];
