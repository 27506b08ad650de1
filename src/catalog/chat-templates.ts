/**
 * Chat templates of the Phi family and the code that renders them.
 *
 * The template strings are copied byte-for-byte from their sources (listed in docs/MODELS.md "Chat templates"),
 * JSON-encoded exactly as they appear in `tokenizer_config.json` / GGUF `tokenizer.chat_template`; the string
 * literals below are those JSON strings verbatim (a JSON string is a valid TypeScript string literal, so `\n`
 * here is the same newline character the JSON escape stands for).
 *
 * ## BOS handling
 *
 * The template renders what it renders, and the model file decides about an added BOS, as llama.cpp's chat
 * path does:
 * - {@link renderChatTemplate} substitutes `options.bosToken` verbatim for `{{ bos_token }}`. Only T1
 *   (Phi-3-mini Apr-2024) and T3 (Phi-3-small) reference it; all other Phi templates never emit a BOS.
 * - Callers pass the model's real BOS text (`<s>` for the SPM Phi models, `<|endoftext|>` for Phi-3-small /
 *   phi-4 / Phi-4-mini, from the engine's `EngineModelInfo.bosToken`). The engine tokenizes the rendered prompt
 *   with special-token parsing and never adds a BOS of its own (docs/ENGINE-NOTES.md "Tokenization and BOS").
 * - The serving layer (`withBos` in src/serving/chat-generation.ts) then prepends one BOS when the model file
 *   asks for it (`tokenizer.ggml.add_bos_token`) and the rendered prompt does not already start with it, so a
 *   T1 GGUF with the flag set gets exactly one `<s>` (docs/MODELS.md "Template renders": rendering `bos_token`
 *   and adding a BOS as well would double it), and a Phi-3.5 GGUF (flag false) gets none.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { Template } from "@huggingface/jinja";

// ---------------------------------------------------------------------------------------------------------------
// Template constants (docs/MODELS.md "Chat templates"). Provenance per template is in the doc comment of each one.
// ---------------------------------------------------------------------------------------------------------------

/**
 * T1 — Phi-3-mini-4k-instruct, release template (Apr 2024). Embedded in the official
 * `microsoft/Phi-3-mini-4k-instruct-gguf` files and llama.cpp `models/ggml-vocab-phi-3.gguf`.
 * Renders `{{ bos_token }}` itself and silently drops system messages (docs/MODELS.md "Chat templates").
 */
export const T1_PHI3_MINI_APR2024 =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}";

/**
 * T2 — Phi-3-mini June/July-2024 update ("Phi-3.1"). Source: Ollama `phi3:3.8b` GGUF via huggingface.js
 * `chat-template-automap.ts`; believed also used by Phi-3-mini-128k after its update [unverified]
 * (docs/MODELS.md "Chat templates").
 */
export const T2_PHI3_MINI_JUL2024 =
  "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

/**
 * T3 — Phi-3-small-8k / -128k (HF `tokenizer_config.json`; llama.cpp `tests/test-chat-template.cpp` "Phi-3-small").
 * Renders `{{ bos_token }}` (`<|endoftext|>` for this tokenizer) and passes every role through
 * (docs/MODELS.md "Chat templates").
 */
export const T3_PHI3_SMALL =
  "{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

/**
 * T4 — Phi-3-medium-4k / -128k (llama.cpp test "Phi-3-medium"; Ollama `phi3:14b`). Like T1 without BOS:
 * system messages are dropped (docs/MODELS.md "Chat templates").
 */
export const T4_PHI3_MEDIUM =
  "{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}";

/**
 * T5 — Phi-3.5-mini-instruct (llama.cpp `models/templates/microsoft-Phi-3.5-mini-instruct.jinja`; Ollama
 * `phi3.5:3.8b`); believed identical for Phi-3.5-MoE-instruct [unverified]. Empty system messages are skipped
 * (docs/MODELS.md "Chat templates").
 */
export const T5_PHI35_MINI =
  "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

/**
 * T6 — Phi-3-vision-128k-instruct (onnxruntime-genai `test/models/phi3-v/tokenizer_config.json`; llama.cpp test
 * "Phi-3-vision"); Phi-3.5-vision believed identical [unverified] (docs/MODELS.md "Chat templates").
 */
export const T6_PHI3_VISION =
  "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}{{- '<|assistant|>\n' -}}{% endif %}";

/**
 * T7a — phi-4 release template (Dec 2024; dotnet/machinelearning #7337 quoting `tokenizer_config.json`; llama.cpp
 * test "phi-4"). Ignores `add_generation_prompt`: every user turn already ends with the assistant header
 * (docs/MODELS.md "Chat templates").
 */
export const T7A_PHI4_RELEASE =
  "{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + message['content'] + '<|im_end|><|im_start|>assistant<|im_sep|>'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}";

/**
 * T7b — phi-4 current template (microsoft/phi-4 metadata snapshot 2025-12; identical to Unsloth's "phi-4")
 * (docs/MODELS.md "Chat templates").
 */
export const T7B_PHI4 =
  "{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + message['content'] + '<|im_end|>'}}{% elif (message['role'] == 'assistant') %}{{'<|im_start|>assistant<|im_sep|>' + message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}";

/**
 * T8 — Phi-4-mini-instruct and Phi-4-multimodal-instruct (webgpu/Phi-4-mini-instruct-ONNX `tokenizer_config.json`,
 * pytorch/Phi-4-mini-instruct-INT4 `chat_template.jinja`, onnxruntime-genai `test/c_api_tests.cpp`). No newlines;
 * tools are read from a `tools` string **on the system message** (docs/MODELS.md "Chat templates", "Tool calling").
 */
export const T8_PHI4_MINI =
  "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] is not none %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}";

/** Identifiers of the catalog chat templates (docs/MODELS.md "Chat templates": T1…T8). */
export type ChatTemplateId =
  | "phi3-mini-apr2024" // T1
  | "phi3-mini-jul2024" // T2
  | "phi3-small" // T3
  | "phi3-medium" // T4
  | "phi3.5-mini" // T5
  | "phi3-vision" // T6
  | "phi4-release" // T7a
  | "phi4" // T7b
  | "phi4-mini"; // T8

/** The catalog chat templates by id: exact Jinja sources (docs/MODELS.md "Chat templates"). */
export const CHAT_TEMPLATES: Readonly<Record<ChatTemplateId, string>> = Object.freeze({
  "phi3-mini-apr2024": T1_PHI3_MINI_APR2024,
  "phi3-mini-jul2024": T2_PHI3_MINI_JUL2024,
  "phi3-small": T3_PHI3_SMALL,
  "phi3-medium": T4_PHI3_MEDIUM,
  "phi3.5-mini": T5_PHI35_MINI,
  "phi3-vision": T6_PHI3_VISION,
  "phi4-release": T7A_PHI4_RELEASE,
  phi4: T7B_PHI4,
  "phi4-mini": T8_PHI4_MINI,
});

/** All {@link ChatTemplateId} values, in T1…T8 order. */
export const CHAT_TEMPLATE_IDS: readonly ChatTemplateId[] = Object.freeze(
  Object.keys(CHAT_TEMPLATES) as ChatTemplateId[],
);

/** Type guard: whether `id` names a catalog chat template. */
export function isChatTemplateId(id: string): id is ChatTemplateId {
  return Object.prototype.hasOwnProperty.call(CHAT_TEMPLATES, id);
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------------------------

/** One chat message as the templates see it (already flattened to text). */
export interface TemplateMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  /**
   * Tool definitions (a JSON string) attached to a system message. Only T8 (Phi-4-mini) reads it, rendering
   * `<|tool|>…<|/tool|>` inside the system turn (docs/MODELS.md "Tool calling"). Omitted from the template context
   * when undefined.
   */
  tools?: string | undefined;
  /**
   * Spans of `content` the server wrote as markup (e.g. `<|tool_call|>`…`<|/tool_call|>` around an
   * assistant turn's calls): {@link renderChatPrompt} leaves them out of the literal spans, so their
   * special tokens are parsed like the template's own.
   */
  markup?: readonly TextRange[] | undefined;
}

/** A half-open range [start, end) of UTF-16 offsets into a string. */
export interface TextRange {
  start: number;
  end: number;
}

/** A rendered prompt with the spans that are message text (contents, tool definitions), in order. */
export interface RenderedPrompt {
  prompt: string;
  literalSpans: TextRange[];
}

/** Options for {@link renderChatTemplate}. */
export interface RenderOptions {
  /** Text substituted for `{{ bos_token }}` (see the module comment on BOS handling). */
  bosToken: string;
  /** Text substituted for `{{ eos_token }}` (emitted by several templates when `addGenerationPrompt` is false). */
  eosToken: string;
  /** Value of `add_generation_prompt`; default `true`. */
  addGenerationPrompt?: boolean;
}

/** Compiled templates keyed by source text. Bounded so that arbitrary GGUF templates cannot grow it forever. */
const compiledCache = new Map<string, Template>();
const COMPILED_CACHE_MAX = 64;

function compile(template: string): Template {
  const cached = compiledCache.get(template);
  if (cached !== undefined) return cached;
  const compiled = new Template(template);
  if (compiledCache.size >= COMPILED_CACHE_MAX) {
    // Evict the oldest entry (Map iteration is insertion order).
    const oldest = compiledCache.keys().next();
    if (oldest.done !== true) compiledCache.delete(oldest.value);
  }
  compiledCache.set(template, compiled);
  return compiled;
}

/**
 * The catalog templates written out as plain functions: same output as the Jinja interpreter
 * (a test renders both over many message sets), without building an interpreter environment per
 * request, which was the largest single cost of the request path. Templates read from GGUF
 * files that match none of these still go through Jinja.
 */
type NativeRenderer = (messages: readonly TemplateMessage[], generation: boolean, bos: string, eos: string) => string;

const PHI3_TURNS = (messages: readonly TemplateMessage[], systemWhenEmpty: boolean): string => {
  let out = "";
  for (const m of messages) {
    if (m.role === "system") {
      if (systemWhenEmpty || m.content !== "") out += `<|system|>\n${m.content}<|end|>\n`;
    } else if (m.role === "user") out += `<|user|>\n${m.content}<|end|>\n`;
    else if (m.role === "assistant") out += `<|assistant|>\n${m.content}<|end|>\n`;
  }
  return out;
};

const PHI3_APR_TURNS = (messages: readonly TemplateMessage[]): string => {
  let out = "";
  for (const m of messages) {
    if (m.role === "user") out += `<|user|>\n${m.content}<|end|>\n<|assistant|>\n`;
    else if (m.role === "assistant") out += `${m.content}<|end|>\n`;
  }
  return out;
};

const ANY_ROLE_TURNS = (messages: readonly TemplateMessage[]): string => {
  let out = "";
  for (const m of messages) out += `<|${m.role}|>\n${m.content}<|end|>\n`;
  return out;
};

const NATIVE_RENDERERS: ReadonlyMap<string, NativeRenderer> = new Map<string, NativeRenderer>([
  [T1_PHI3_MINI_APR2024, (messages, _generation, bos) => bos + PHI3_APR_TURNS(messages)],
  [T2_PHI3_MINI_JUL2024, (messages, generation, _bos, eos) => PHI3_TURNS(messages, true) + (generation ? "<|assistant|>\n" : eos)],
  [T3_PHI3_SMALL, (messages, generation, bos, eos) => bos + ANY_ROLE_TURNS(messages) + (generation ? "<|assistant|>\n" : eos)],
  [T4_PHI3_MEDIUM, (messages) => PHI3_APR_TURNS(messages)],
  [T5_PHI35_MINI, (messages, generation, _bos, eos) => PHI3_TURNS(messages, false) + (generation ? "<|assistant|>\n" : eos)],
  [T6_PHI3_VISION, (messages, generation) => ANY_ROLE_TURNS(messages) + (generation && messages[messages.length - 1]!.role !== "assistant" ? "<|assistant|>\n" : "")],
  [T7A_PHI4_RELEASE, (messages) => {
    let out = "";
    for (const m of messages) {
      if (m.role === "system") out += `<|im_start|>system<|im_sep|>${m.content}<|im_end|>`;
      else if (m.role === "user") out += `<|im_start|>user<|im_sep|>${m.content}<|im_end|><|im_start|>assistant<|im_sep|>`;
      else if (m.role === "assistant") out += `${m.content}<|im_end|>`;
    }
    return out;
  }],
  [T7B_PHI4, (messages, generation) => {
    let out = "";
    for (const m of messages) if (m.role === "system" || m.role === "user" || m.role === "assistant") out += `<|im_start|>${m.role}<|im_sep|>${m.content}<|im_end|>`;
    return out + (generation ? "<|im_start|>assistant<|im_sep|>" : "");
  }],
  [T8_PHI4_MINI, (messages, generation, _bos, eos) => {
    let out = "";
    for (const m of messages) {
      out += m.role === "system" && m.tools !== undefined ? `<|system|>${m.content}<|tool|>${m.tools}<|/tool|><|end|>` : `<|${m.role}|>${m.content}<|end|>`;
    }
    return out + (generation ? "<|assistant|>" : eos);
  }],
]);

/** Plain objects for the Jinja context; `tools` only when defined, so `'tools' in message` is false otherwise. */
function toContextMessages(messages: readonly TemplateMessage[]): Record<string, string>[] {
  return messages.map((m) => {
    const out: Record<string, string> = { role: m.role, content: m.content };
    if (m.tools !== undefined) out.tools = m.tools;
    return out;
  });
}

/**
 * Renders messages with a Jinja chat template (catalog constant or a template read from a GGUF).
 * Compiled templates are cached.
 *
 * The context is the Hugging Face one: `messages`, `add_generation_prompt`, `bos_token`, `eos_token`.
 * `bos_token` is rendered verbatim (see the module comment). System messages are passed as given: call
 * {@link translateSystemMessages} first for models that do not support the system role.
 *
 * @throws Error when the template does not parse or raises during rendering (e.g. `raise_exception`).
 */
export function renderChatTemplate(
  template: string,
  messages: readonly TemplateMessage[],
  options: RenderOptions,
): string {
  const native = NATIVE_RENDERERS.get(template);
  if (native !== undefined && messages.length > 0) return native(messages, options.addGenerationPrompt ?? true, options.bosToken, options.eosToken);
  return renderWithJinja(template, messages, options);
}

/** The Jinja interpreter's rendering of any template (GGUF-supplied ones included). */
export function renderWithJinja(template: string, messages: readonly TemplateMessage[], options: RenderOptions): string {
  return compile(template).render({
    messages: toContextMessages(messages),
    add_generation_prompt: options.addGenerationPrompt ?? true,
    bos_token: options.bosToken,
    eos_token: options.eosToken,
  });
}

/**
 * Renders like {@link renderChatTemplate} and says where the message text landed, so that the
 * engine parses special tokens in the template's text only (docs/ENGINE-NOTES.md "Special tokens in
 * message content"). The template renders placeholders in place of each non-empty content and tool
 * list (empty ones stay empty: templates test them, e.g. T5 skips an empty system message); each
 * placeholder is then replaced by its text, which becomes a literal span. The template's text never
 * holds user text, so nothing a user writes can be taken for a template marker.
 *
 * A template sees message text only as an opaque placeholder: one that filters it (`| trim`) renders
 * it unchanged, and one that rewrites it (`| upper`, `| tojson`) cannot be rendered this way and
 * throws (the deployment can opt back into parsing special tokens everywhere: docs/CONFIG.md).
 * The catalog templates insert the text verbatim, so they render exactly as {@link renderChatTemplate}.
 */
/**
 * Marks placeholders as this process's own. Message text never reaches the template (only
 * placeholders do), so no request can forge one; a nonce per process (not per render: drawing
 * random bytes was the largest cost of a render) also keeps a template's own text from looking like one.
 */
const PLACEHOLDER_NONCE = randomBytes(8).toString("hex");

export function renderChatPrompt(template: string, messages: readonly TemplateMessage[], options: RenderOptions): RenderedPrompt {
  const nonce = PLACEHOLDER_NONCE;
  const texts: { text: string; markup: readonly TextRange[] | undefined }[] = [];
  const place = (text: string, markup?: readonly TextRange[]): string => {
    if (text === "") return "";
    texts.push({ text, markup });
    return `\uE000${nonce}:${texts.length - 1}\uE001`;
  };
  const placed = messages.map((m): TemplateMessage => ({ role: m.role, content: place(m.content, m.markup), ...(m.tools === undefined ? {} : { tools: place(m.tools) }) }));
  // Each piece after the first starts with a placeholder's index and its closing delimiter.
  const [head, ...rest] = renderChatTemplate(template, placed, options).split(`\uE000${nonce}:`);
  const out: string[] = [head!];
  let length = head!.length;
  const literalSpans: TextRange[] = [];
  const templateText = [head!];
  const rewritten = () => new TemplateRewritesTextError();
  for (const piece of rest) {
    const close = piece.indexOf("\uE001");
    const placedText = close > 0 ? texts[Number(piece.slice(0, close))] : undefined;
    if (!placedText) throw rewritten();
    const { text, markup } = placedText;
    let from = 0;
    for (const range of markup ?? []) {
      if (range.start > from) literalSpans.push({ start: length + from, end: length + range.start });
      from = Math.max(from, range.end);
    }
    if (from < text.length) literalSpans.push({ start: length + from, end: length + text.length });
    const after = piece.slice(close + 1);
    out.push(text, after);
    templateText.push(after);
    length += text.length + after.length;
  }
  if (templateText.join("").toLowerCase().includes(nonce)) throw rewritten();
  const prompt = out.join("");
  return { prompt, literalSpans };
}

/** Thrown by {@link renderChatPrompt} for a template that changes message text (`| upper`, `| tojson`). */
export class TemplateRewritesTextError extends Error {
  constructor() {
    super("The chat template rewrites message text, so the message text cannot be kept apart from the template's markers.");
    this.name = "TemplateRewritesTextError";
  }
}

/**
 * True when {@link renderChatPrompt} cannot keep message text apart from `template`'s markers
 * (checked once at start-up, so such a template is refused there rather than failing every request).
 */
export function templateRewritesMessageText(template: string): boolean {
  // Text any rewrite would change: cases, quotes, a backslash, a newline, HTML's specials.
  const text = 'Say "Hi" & <b>bye</b>\\ now\nOK';
  const probe: TemplateMessage[] = [{ role: "user", content: text }, { role: "assistant", content: text }, { role: "user", content: text }];
  const options = { bosToken: "<s>", eosToken: "</s>" };
  try {
    return renderChatPrompt(template, probe, options).prompt !== renderChatTemplate(template, probe, options);
  } catch (error) {
    return error instanceof TemplateRewritesTextError;
  }
}

/** Probe text unlikely to appear in any template. */
const SYSTEM_PROBE = "<<phiserve-system-probe-7f3c>>";
const systemSupportCache = new Map<string, boolean>();

/**
 * True when the template renders a system message at all (used for model files not in the catalog).
 *
 * Detected like llama.cpp/minja's `supports_system_role` capability: render `[system: <probe>, user: "x"]` and
 * look for the probe text in the output. A template that throws on that input counts as not supporting system.
 * T1 (Phi-3-mini Apr-2024) and T4 (Phi-3-medium) return false; the other catalog templates return true.
 */
export function templateSupportsSystemRole(template: string): boolean {
  const cached = systemSupportCache.get(template);
  if (cached !== undefined) return cached;
  let supported: boolean;
  try {
    const out = renderChatTemplate(
      template,
      [
        { role: "system", content: SYSTEM_PROBE },
        { role: "user", content: "x" },
      ],
      { bosToken: "", eosToken: "", addGenerationPrompt: true },
    );
    supported = out.includes(SYSTEM_PROBE);
  } catch {
    supported = false;
  }
  if (systemSupportCache.size >= COMPILED_CACHE_MAX) systemSupportCache.clear();
  systemSupportCache.set(template, supported);
  return supported;
}

/** Probe texts for {@link templateOpensAssistantAfterEachUserTurn}, unlikely to appear in any template. */
const TURN_PROBES = ["<<phiserve-turn-probe-1>>", "<<phiserve-turn-probe-2>>"] as const;
const assistantAfterUserCache = new Map<string, boolean>();

/**
 * True when the template opens an assistant turn after every user message, whatever comes next: T1 (Phi-3-mini
 * Apr-2024) and T4 (Phi-3-medium) render `<|user|>\n…<|end|>\n<|assistant|>\n` for each user turn, and T7a
 * (phi-4 release) does the same in ChatML. Two consecutive user messages would then have an empty assistant turn
 * between them, so system messages must be folded into the user turn rather than sent as user messages of their own.
 *
 * Detected by rendering, so that it holds for a GGUF's own template too: what the template writes between a user
 * message and a following assistant message (the end of the user turn and the assistant header) is looked for
 * between two consecutive user messages. A template that raises on consecutive user messages (e.g. "roles must
 * alternate"), drops the probe texts, or writes nothing between a user and an assistant message also counts as
 * true: the fold never puts two user messages side by side.
 */
export function templateOpensAssistantAfterEachUserTurn(template: string): boolean {
  const cached = assistantAfterUserCache.get(template);
  if (cached !== undefined) return cached;
  let opens = true;
  try {
    const [first, second] = TURN_PROBES;
    const options = { bosToken: "", eosToken: "", addGenerationPrompt: false };
    const userThenAssistant = gapBetween(renderChatTemplate(template, [{ role: "user", content: first }, { role: "assistant", content: second }], options), first, second);
    const userThenUser = gapBetween(renderChatTemplate(template, [{ role: "user", content: first }, { role: "user", content: second }], options), first, second);
    if (userThenAssistant !== undefined && userThenAssistant !== "" && userThenUser !== undefined) opens = userThenUser.includes(userThenAssistant);
  } catch {
    opens = true;
  }
  if (assistantAfterUserCache.size >= COMPILED_CACHE_MAX) assistantAfterUserCache.clear();
  assistantAfterUserCache.set(template, opens);
  return opens;
}

/** The text between the first occurrence of `first` and the following `second`; undefined when either is missing. */
function gapBetween(rendered: string, first: string, second: string): string | undefined {
  const start = rendered.indexOf(first);
  if (start === -1) return undefined;
  const end = rendered.indexOf(second, start + first.length);
  return end === -1 ? undefined : rendered.slice(start + first.length, end);
}

/**
 * Azure's behaviour for models that don't support the system role: "system messages are translated to user
 * messages", read literally. The role is rewritten and the message stays where it is, so the Azure docs' REST
 * sample on Phi-3.5-mini renders `<|user|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHow many languages are in
 * the world?<|end|>\n<|assistant|>\n`: 19 tokens, the figure Azure reports (folding it into the user turn gives 18).
 *
 * Templates that open an assistant turn after every user message ({@link templateOpensAssistantAfterEachUserTurn}:
 * T1, T4, T7a, and any GGUF template found to do so) would render an empty assistant turn between the two user
 * messages; for them the system text is folded into the next user message instead ({@link foldSystemIntoUser}).
 */
export function translateSystemMessages(template: string, messages: readonly TemplateMessage[]): TemplateMessage[] {
  return templateOpensAssistantAfterEachUserTurn(template) ? foldSystemIntoUser(messages) : systemToUserMessages(messages);
}

/**
 * Every system (and, defensively, `developer`) message becomes a user message at the same place, its content
 * unchanged. Empty ones are dropped: they carry nothing (T5 skips empty system messages too). Tool definitions
 * carried on a system message (`tools`) have no place in a user turn and are dropped. The input is not modified.
 */
export function systemToUserMessages(messages: readonly TemplateMessage[]): TemplateMessage[] {
  const out: TemplateMessage[] = [];
  for (const message of messages) {
    // `developer` is not part of TemplateMessage's type, but API layers may pass it through (Azure treats it like system).
    const role: string = message.role;
    if (role !== "system" && role !== "developer") out.push({ ...message });
    else if (message.content !== "") out.push({ role: "user", content: message.content });
  }
  return out;
}

/**
 * The system-role fold for templates that open an assistant turn after every user message (see
 * {@link translateSystemMessages}). Implemented as llama.cpp's (minja's) system-role polyfill, whose output
 * llama.cpp's `tests/test-chat-template.cpp` expects for the Phi-3-mini and Phi-3-medium templates
 * (`<|user|>\nYou are a helpful assistant\nHello<|end|>\n<|assistant|>\n`):
 *
 * - consecutive system (and, defensively, `developer`) messages are collected and joined with `"\n"`
 *   (empty ones are skipped);
 * - the collected text is prepended, followed by `"\n"`, to the **next** user message
 *   (`system + "\n" + user`; just `system` when the user content is empty);
 * - if the next non-system message is not a user message (assistant/tool), or the conversation ends, the
 *   collected text becomes a user message of its own at that position.
 *
 * Tool definitions carried on a system message (`tools`) are not representable in a user turn and are dropped;
 * callers that need tools use a model whose template supports them natively (Phi-4-mini, T8).
 * The input is not modified.
 */
export function foldSystemIntoUser(messages: readonly TemplateMessage[]): TemplateMessage[] {
  const out: TemplateMessage[] = [];
  const pending: string[] = [];
  const flush = (): void => {
    if (pending.length > 0) {
      out.push({ role: "user", content: pending.join("\n") });
      pending.length = 0;
    }
  };
  for (const message of messages) {
    // `developer` is not part of TemplateMessage's type, but API layers may pass it through (Azure treats it like
    // system: docs/AZURE-API.md "Messages").
    const role: string = message.role;
    if (role === "system" || role === "developer") {
      // An empty system message carries nothing; skipping it avoids a stray "\n" (minja likewise skips them).
      if (message.content !== "") pending.push(message.content);
      continue;
    }
    if (role === "user" && pending.length > 0) {
      const system = pending.join("\n");
      pending.length = 0;
      if (message.content === "") {
        out.push({ ...message, content: system });
        continue;
      }
      // The server's markup (an image tag) moves with the text it marks.
      const shift = system.length + 1;
      const markup = message.markup?.map((r) => ({ start: r.start + shift, end: r.end + shift }));
      out.push({ ...message, content: `${system}\n${message.content}`, ...(markup === undefined ? {} : { markup }) });
      continue;
    }
    flush();
    out.push({ ...message });
  }
  flush();
  return out;
}
