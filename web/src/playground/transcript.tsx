/** One pane's messages: user turns (text, image), answers as sanitised Markdown with their figures. */
import { useMemo, useState } from "preact/hooks";
import { memo } from "preact/compat";
import { renderMarkdown } from "../lib/markdown.ts";
import type { AnswerStats, Message, Pane } from "../lib/conversation.ts";
import { LogprobView } from "./logprobs.tsx";

export interface TranscriptProps {
  pane: Pane;
  paneIndex: number;
  label: string;
  isRunning: boolean;
  onEdit(index: number): void;
  onRegenerate(paneIndex: number): void;
}

function Markdown({ text }: { text: string }) {
  const html = useMemo(() => renderMarkdown(text), [text]);
  return <div class="markdown" dangerouslySetInnerHTML={{ __html: html }} />;
}

/**
 * While an answer streams, its text is cut into blocks at blank lines outside code fences, and each block is
 * rendered by a memoised component: a block never changes once a later one has started, so an update renders
 * only the last block, and the DOM of the others stays as it is. The cost per update is that of one paragraph,
 * not of the whole answer (docs/PLAYGROUND.md "Streaming"). The finished answer is rendered whole, so
 * constructs that span blocks (a list with blank lines, reference links) come out right in the end.
 */
export function splitBlocks(text: string): string[] {
  const blocks: string[] = [];
  let inFence = false;
  let start = 0;
  let pos = 0;
  for (const line of text.split("\n")) {
    const end = Math.min(pos + line.length + 1, text.length);
    if (/^ {0,3}(```|~~~)/.test(line)) inFence = !inFence;
    else if (!inFence && line.trim() === "" && end > start) {
      blocks.push(text.slice(start, end));
      start = end;
    }
    pos = end;
  }
  if (start < text.length) blocks.push(text.slice(start));
  return blocks;
}

const Block = memo(function Block({ text }: { text: string }) {
  return <div dangerouslySetInnerHTML={{ __html: renderMarkdown(text) }} />;
});

function StreamingMarkdown({ text }: { text: string }) {
  return (
    <div class="markdown">
      {splitBlocks(text).map((block, i) => (
        <Block key={i} text={block} />
      ))}
    </div>
  );
}

function Stats({ stats }: { stats: AnswerStats }) {
  const parts: string[] = [];
  if (stats.promptTokens !== undefined) parts.push(`${stats.promptTokens} prompt tokens`);
  if (stats.completionTokens !== undefined) parts.push(`${stats.completionTokens} completion tokens`);
  if (stats.ttftMs !== undefined) parts.push(`first token ${stats.ttftMs} ms`);
  if (stats.tokensPerSecond !== undefined) parts.push(`${stats.tokensPerSecond} tokens/s`);
  if (stats.finishReason) parts.push(`finish: ${stats.finishReason}`);
  return parts.length ? <p class="stats" data-testid="answer-stats">{parts.join(" · ")}</p> : null;
}

type Finding = { filtered?: boolean; severity?: string; detected?: boolean };

function FilterNote({ label, results }: { label: string; results: Record<string, unknown> }) {
  const items = Object.entries(results).map(([category, value]) => {
    const f = (value ?? {}) as Finding;
    if (category === "error") return `not checked (${(value as { message?: string } | null)?.message ?? "classifier error"})`;
    const state = f.severity ?? (f.detected === undefined ? "" : f.detected ? "detected" : "not detected");
    return `${category}: ${state}${f.filtered ? " (filtered)" : ""}`;
  });
  const filtered = Object.values(results).some((v) => (v as Finding | null)?.filtered);
  return (
    <p class={filtered ? "filter filtered" : "filter"} data-testid="content-filter">
      Content filter, {label}: {items.join(", ")}
    </p>
  );
}

function MessageView(props: { message: Message; index: number; isLast: boolean; isRunning: boolean; paneIndex: number; onEdit(i: number): void; onRegenerate(p: number): void }) {
  const { message, index } = props;
  const [showTokens, setShowTokens] = useState(false);
  if (message.role === "user") {
    return (
      <li class="msg user">
        <h3 class="who">You</h3>
        {message.image && <img class="thumb" src={message.image} alt="Attached image" />}
        <p class="text">{message.content}</p>
        {props.paneIndex === 0 && (
          <button type="button" class="link" disabled={props.isRunning} onClick={() => props.onEdit(index)}>
            Edit and resend
          </button>
        )}
      </li>
    );
  }
  return (
    <li class="msg assistant" aria-busy={props.isRunning && props.isLast}>
      <h3 class="who">Assistant</h3>
      {showTokens && message.logprobs ? (
        <LogprobView tokens={message.logprobs} />
      ) : props.isRunning && props.isLast ? (
        <StreamingMarkdown text={message.content} />
      ) : (
        <Markdown text={message.content} />
      )}
      {message.error && (
        <p class="error" role="alert">
          {message.error}
        </p>
      )}
      {message.stats && <Stats stats={message.stats} />}
      {message.promptFilter && <FilterNote label="prompt" results={message.promptFilter} />}
      {message.contentFilter && <FilterNote label="completion" results={message.contentFilter} />}
      <div class="actions">
        {message.logprobs && message.logprobs.length > 0 && (
          <button type="button" class="link" aria-pressed={showTokens} onClick={() => setShowTokens(!showTokens)}>
            {showTokens ? "Show text" : "Show token probabilities"}
          </button>
        )}
        {props.isLast && !props.isRunning && (
          <button type="button" class="link" onClick={() => props.onRegenerate(props.paneIndex)}>
            Regenerate
          </button>
        )}
      </div>
    </li>
  );
}

export function Transcript({ pane, paneIndex, label, isRunning, onEdit, onRegenerate }: TranscriptProps) {
  return (
    <section class="pane" aria-label={label}>
      <h2 class="pane-title">{label}</h2>
      {pane.messages.length === 0 ? (
        <p class="empty">No messages yet.</p>
      ) : (
        <ol class="messages" aria-live="polite" aria-relevant="additions">
          {pane.messages.map((m, i) => (
            <MessageView key={i} message={m} index={i} isLast={i === pane.messages.length - 1} isRunning={isRunning} paneIndex={paneIndex} onEdit={onEdit} onRegenerate={onRegenerate} />
          ))}
        </ol>
      )}
    </section>
  );
}
