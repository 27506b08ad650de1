/** "View code": the request as it would be sent now, in four clients, with a copy button. */
import { useEffect, useRef, useState } from "preact/hooks";
import { highlight } from "../lib/markdown.ts";
import { SNIPPET_LABELS, snippet, type SnippetInput, type SnippetKind } from "../lib/snippets.ts";

const LANGUAGE: Record<SnippetKind, string> = { "azure-js": "javascript", python: "python", "openai-js": "javascript", curl: "bash" };
const KINDS = Object.keys(SNIPPET_LABELS) as SnippetKind[];

export function CodeDialog({ input, onClose }: { input: SnippetInput; onClose(): void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [kind, setKind] = useState<SnippetKind>("azure-js");
  const [copied, setCopied] = useState("");
  const code = snippet(kind, input);
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(code);
      setCopied(`${SNIPPET_LABELS[kind]} snippet copied.`);
    } catch {
      setCopied("The browser refused the clipboard: select the code and copy it.");
    }
  };
  return (
    <dialog ref={dialog} class="code-dialog" aria-labelledby="code-title" onClose={onClose}>
      <h2 id="code-title">View code</h2>
      <p class="hint">The conversation and parameters as they would be sent now. The key is read from AZURE_INFERENCE_CREDENTIAL, never written here.</p>
      <div role="tablist" aria-label="Client">
        {KINDS.map((k) => (
          <button
            key={k}
            type="button"
            role="tab"
            id={`tab-${k}`}
            aria-selected={k === kind}
            aria-controls="code-panel"
            tabIndex={k === kind ? 0 : -1}
            onClick={() => setKind(k)}
            onKeyDown={(e) => {
              const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
              if (step) {
                const next = KINDS[(KINDS.indexOf(k) + step + KINDS.length) % KINDS.length]!;
                setKind(next);
                document.getElementById(`tab-${next}`)?.focus();
              }
            }}
          >
            {SNIPPET_LABELS[k]}
          </button>
        ))}
      </div>
      <div role="tabpanel" id="code-panel" aria-labelledby={`tab-${kind}`}>
        <pre tabIndex={0} aria-label={`${SNIPPET_LABELS[kind]} code`}>
          <code class="hljs" data-testid="snippet" dangerouslySetInnerHTML={{ __html: highlight(code, LANGUAGE[kind]) }} />
        </pre>
      </div>
      <div class="dialog-bar">
        <button type="button" class="primary" onClick={() => void copy()}>
          Copy
        </button>
        <button type="button" onClick={() => dialog.current?.close()}>
          Close
        </button>
        <span role="status">{copied}</span>
      </div>
    </dialog>
  );
}
