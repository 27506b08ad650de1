/**
 * Prompt tokenizing for the ONNX vision engine, with Hugging Face's tokenizer (@huggingface/tokenizers
 * over the folder's tokenizer.json), so counts equal Hugging Face's and Azure's (docs/VISION.md
 * "Prompt format"):
 * - special-token text (`<|end|>`, `<|assistant|>`) is parsed only in the template's text; inside
 *   the prompt's literal spans (message contents) it is plain text, so a user cannot forge a turn;
 * - `<|image_N|>` in template text is Phi-3-vision's `<|image|>` for `images[N − 1]`: it eats the
 *   whitespace after it as `<|image|>` does (rstrip) and becomes `images[N − 1].tokens` positions of
 *   id −N, which the embedding graph fills with that image's features.
 * Hugging Face splits its input at added tokens, lets each one's lstrip/rstrip eat the whitespace
 * next to it, then normalizes every piece between them on its own (Phi-3's normalizer prepends `▁`
 * to each). Here the split is done by hand (markers only in template text) and every run of text
 * between markers — template and literal text joined — is encoded by a second tokenizer built
 * from the same tokenizer.json without its added tokens, so a prompt without special-token text
 * in its contents gets exactly the full tokenizer's ids (a test checks a corpus).
 *
 * `encode`/`count` encode the runs on the calling thread. `encodeAsync`/`countAsync` hand the runs
 * of a large prompt to a `RunEncoder` (the tokenizer thread, onnx-tokenizer-thread.ts, whose
 * OnnxTokenizer calls `encodeRuns`) and put the ids together here, so the result is the same.
 */
import { Tokenizer } from "@huggingface/tokenizers";
import type { EngineImage, PromptText, TokenCount } from "../engine.ts";

/** Phi-3-vision's image token (tokenizer.json), which `<|image_N|>` stands for. */
export const IMAGE_TOKEN = "<|image|>";
const IMAGE_TAG = /<\|image_(\d+)\|>/y;
/** Rust's `char::is_whitespace` (what Hugging Face's lstrip/rstrip strip). */
const WHITESPACE = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const LEADING_SPACE = new RegExp(`^[${WHITESPACE}]+`);
const TRAILING_SPACE = new RegExp(`[${WHITESPACE}]+$`);

interface AddedToken {
  id: number;
  content: string;
  lstrip: boolean;
  rstrip: boolean;
  special: boolean;
}

/** A marker found in template text: an added token, or an image tag (`image` = N − 1). */
interface Marker {
  token: AddedToken;
  image?: number;
}

type Piece = string | Marker;

/** Tokenizations kept between counting a prompt and generating from it. */
const CACHE_ENTRIES = 16;

/**
 * Text runs up to this many UTF-16 units in all are encoded on the event loop by the async methods:
 * at about 4 ms per KB that holds it for 16 ms at most (docs/ENGINE-NOTES.md "ONNX engine
 * batching"), while a small prompt sent to the single tokenizer thread could wait behind a large one.
 */
export const INLINE_CHARS = 4096;

/** Each text run's ids, in order, encoded elsewhere (the tokenizer thread). */
export type RunEncoder = (runs: string[]) => Promise<ArrayLike<number>[]>;

/** What `count` knows before encoding: the answer, or the pieces to encode. */
type CountPlan = { result: TokenCount } | { key: string; pieces: Piece[] };

export class OnnxTokenizer {
  /** The folder's tokenizer as Hugging Face builds it (added tokens parsed everywhere): the reference. */
  readonly full: Tokenizer;
  /** The same tokenizer without added tokens: encodes the text between markers. */
  private readonly plain: Tokenizer;
  private readonly added: AddedToken[];
  private readonly byContent = new Map<string, AddedToken>();
  private readonly markerPattern: RegExp;
  private readonly imageToken: AddedToken;
  /** No token covers more input bytes than this, so a run of B bytes is at least ⌈B / maxTokenBytes⌉ tokens. */
  readonly maxTokenBytes: number;
  private readonly cache = new Map<string, number[]>();

  constructor(tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown>) {
    const { added_tokens_decoder: _decoder, ...config } = tokenizerConfig;
    this.full = new Tokenizer(tokenizerJson, tokenizerConfig);
    this.plain = new Tokenizer({ ...tokenizerJson, added_tokens: [] }, config);
    this.added = ((tokenizerJson.added_tokens ?? []) as Record<string, unknown>[]).map((t) => ({
      id: Number(t.id),
      content: String(t.content),
      lstrip: t.lstrip === true,
      rstrip: t.rstrip === true,
      special: t.special === true,
    }));
    for (const token of this.added) if (token.content !== "" && !this.byContent.has(token.content)) this.byContent.set(token.content, token);
    const image = this.byContent.get(IMAGE_TOKEN);
    if (!image) throw new Error(`tokenizer.json has no ${IMAGE_TOKEN} token: not a Phi-3-vision tokenizer`);
    this.imageToken = image;
    // Longest first: the leftmost match is then the longest, as Hugging Face's matcher finds it.
    const contents = [...this.byContent.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
    this.markerPattern = new RegExp(`<\\|image_\\d+\\|>|${contents.join("|")}`, "g");
    let maxBytes = 1;
    for (const piece of this.plain.get_vocab(false).keys()) maxBytes = Math.max(maxBytes, Buffer.byteLength(piece.replaceAll("\u2581", " ")));
    this.maxTokenBytes = maxBytes;
  }

  /** The added token whose text is exactly `text`, or a vocabulary entry spelled so. */
  tokenId(text: string): number | undefined {
    return this.byContent.get(text)?.id ?? this.full.token_to_id(text);
  }

  /** Added tokens (their ids and texts), for stop tokens and decoding. */
  addedTokens(): readonly AddedToken[] {
    return this.added;
  }

  /**
   * The prompt's token ids (image positions as −N). Throws an Error when an image tag refers to no
   * image, or an image is referred to other than exactly once.
   */
  encode(prompt: PromptText): number[] {
    const key = cacheKey(prompt);
    const cached = this.cache.get(key);
    if (cached) return cached;
    const pieces = this.partition(prompt, Infinity)!;
    return this.remember(key, joinIds(pieces, this.encodeRuns(runsOf(pieces)), prompt.images ?? []));
  }

  /** `encode`, with the text runs of a large prompt encoded by `offload`. */
  async encodeAsync(prompt: PromptText, offload: RunEncoder): Promise<number[]> {
    const key = cacheKey(prompt);
    const cached = this.cache.get(key);
    if (cached) return cached;
    const pieces = this.partition(prompt, Infinity)!;
    const parts = await this.encodeRunsWith(runsOf(pieces), offload);
    return this.remember(key, joinIds(pieces, parts, prompt.images ?? []));
  }

  /** See `Engine.countTokens`: exact, or a lower bound over `limitTokens` without encoding any text. */
  count(prompt: PromptText, limitTokens: number): TokenCount {
    const plan = this.planCount(prompt, limitTokens);
    return "result" in plan ? plan.result : this.finishCount(plan, this.encodeRuns(runsOf(plan.pieces)), prompt, limitTokens);
  }

  /** `count`, with the text runs of a large prompt encoded by `offload`. */
  async countAsync(prompt: PromptText, limitTokens: number, offload: RunEncoder): Promise<TokenCount> {
    const plan = this.planCount(prompt, limitTokens);
    if ("result" in plan) return plan.result;
    return this.finishCount(plan, await this.encodeRunsWith(runsOf(plan.pieces), offload), prompt, limitTokens);
  }

  /** Each text run's ids (the runs hold no marker: they come from `partition`). */
  encodeRuns(runs: readonly string[]): number[][] {
    return runs.map((run) => this.plain.encode(run, { add_special_tokens: false }).ids);
  }

  /** Inline up to INLINE_CHARS in all, by `offload` over that. */
  private async encodeRunsWith(runs: string[], offload: RunEncoder): Promise<ArrayLike<number>[]> {
    const chars = runs.reduce((sum, run) => sum + run.length, 0);
    return chars <= INLINE_CHARS ? this.encodeRuns(runs) : offload(runs);
  }

  /** The cached count, or the lower bound when the prompt's size alone exceeds the limit, or the pieces to encode. */
  private planCount(prompt: PromptText, limitTokens: number): CountPlan {
    const key = cacheKey(prompt);
    const cached = this.cache.get(key);
    if (cached) return { result: { tokens: cached.length, exact: true } };
    const images = prompt.images ?? [];
    const pieces = this.partition(prompt, limitTokens);
    if (!pieces) return { result: { tokens: limitTokens + 1, exact: false } };
    let atLeast = 0;
    for (const piece of pieces) {
      if (typeof piece === "string") atLeast += Math.ceil(Buffer.byteLength(piece) / this.maxTokenBytes);
      else atLeast += piece.image === undefined ? 1 : images[piece.image]!.tokens;
    }
    if (atLeast > limitTokens) return { result: { tokens: atLeast, exact: false } };
    return { key, pieces };
  }

  /** The exact count; the ids are kept for the generation only when the prompt fits. */
  private finishCount(plan: { key: string; pieces: Piece[] }, parts: readonly ArrayLike<number>[], prompt: PromptText, limitTokens: number): TokenCount {
    const ids = joinIds(plan.pieces, parts, prompt.images ?? []);
    if (ids.length <= limitTokens) this.remember(plan.key, ids);
    return { tokens: ids.length, exact: true };
  }

  /**
   * Splits the prompt into markers and text runs (adjacent text joined, markers' strips applied,
   * empty runs dropped) and checks the image tags. Undefined when more than `maxTokens` positions
   * of markers and images were found (the prompt cannot fit; the scan stops there).
   */
  private partition(prompt: PromptText, maxTokens: number): Piece[] | undefined {
    const text = prompt.prompt;
    const images = prompt.images ?? [];
    const raw: Piece[] = [];
    const used = new Array<boolean>(images.length).fill(false);
    let positions = 0;
    const scan = (from: number, to: number) => {
      const pattern = this.markerPattern;
      pattern.lastIndex = from;
      let at = from;
      for (let match = pattern.exec(text); match && match.index < to; match = pattern.exec(text)) {
        if (match.index + match[0].length > to) break;
        if (match.index > at) raw.push(text.slice(at, match.index));
        const marker = this.marker(match[0], images, used);
        raw.push(marker);
        positions += marker.image === undefined ? 1 : images[marker.image]!.tokens;
        if (positions > maxTokens) return false;
        at = match.index + match[0].length;
      }
      if (to > at) raw.push(text.slice(at, to));
      return true;
    };
    let at = 0;
    for (const span of prompt.literalSpans ?? []) {
      const start = Math.max(span.start, at);
      if (start > at && !scan(at, start)) return undefined;
      if (span.end > start) raw.push(text.slice(start, span.end));
      at = Math.max(at, span.end);
    }
    if (at < text.length && !scan(at, text.length)) return undefined;
    const missing = used.findIndex((u) => !u);
    if (missing >= 0) throw new Error(`image ${missing + 1} of ${images.length} is not referred to by an <|image_${missing + 1}|> tag in the prompt`);
    return joinRuns(raw);
  }

  private marker(text: string, images: readonly EngineImage[], used: boolean[]): Marker {
    IMAGE_TAG.lastIndex = 0;
    const tag = IMAGE_TAG.exec(text);
    if (!tag) return { token: this.byContent.get(text)! };
    const n = Number(tag[1]);
    if (!(n >= 1 && n <= images.length)) throw new Error(`the prompt's <|image_${tag[1]}|> refers to no image (it carries ${images.length})`);
    if (used[n - 1]) throw new Error(`the prompt refers to image ${n} more than once`);
    used[n - 1] = true;
    return { token: this.imageToken, image: n - 1 };
  }

  private remember(key: string, ids: number[]): number[] {
    this.cache.delete(key);
    this.cache.set(key, ids);
    for (const oldest of this.cache.keys()) {
      if (this.cache.size <= CACHE_ENTRIES) break;
      this.cache.delete(oldest);
    }
    return ids;
  }
}

/** The text runs among the pieces, in order. */
function runsOf(pieces: readonly Piece[]): string[] {
  return pieces.filter((piece): piece is string => typeof piece === "string");
}

/** The pieces' ids in order: each text run's encoded ids (`parts`, in run order), each marker's id, each image's positions. */
function joinIds(pieces: readonly Piece[], parts: readonly ArrayLike<number>[], images: readonly EngineImage[]): number[] {
  const ids: number[] = [];
  let next = 0;
  for (const piece of pieces) {
    if (typeof piece === "string") {
      const part = parts[next++]!;
      for (let i = 0; i < part.length; i++) ids.push(part[i]!);
    } else if (piece.image === undefined) ids.push(piece.token.id);
    else for (let i = images[piece.image]!.tokens, id = -(piece.image + 1); i > 0; i--) ids.push(id);
  }
  return ids;
}

/** Joins adjacent text, then lets each marker's lstrip/rstrip eat the whitespace next to it; empty runs go. */
function joinRuns(raw: readonly Piece[]): Piece[] {
  const merged: Piece[] = [];
  for (const piece of raw) {
    const last = merged[merged.length - 1];
    if (typeof piece === "string" && typeof last === "string") merged[merged.length - 1] = last + piece;
    else merged.push(piece);
  }
  const out: Piece[] = [];
  for (let i = 0; i < merged.length; i++) {
    const piece = merged[i]!;
    if (typeof piece !== "string") {
      out.push(piece);
      continue;
    }
    const before = merged[i - 1];
    const after = merged[i + 1];
    let text = piece;
    if (typeof before === "object" && before.token.rstrip) text = text.replace(LEADING_SPACE, "");
    if (typeof after === "object" && after.token.lstrip) text = text.replace(TRAILING_SPACE, "");
    if (text !== "") out.push(text);
  }
  return out;
}

/** Spans and image sizes change the ids of the same text, so they are part of the key. */
function cacheKey(prompt: PromptText): string {
  const spans = prompt.literalSpans?.map((s) => `${s.start}-${s.end}`).join(",") ?? "";
  const images = prompt.images?.map((i) => i.tokens).join(",") ?? "";
  return `${spans}|${images}|${prompt.prompt}`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
