/** The API key field shared by the playground and the dashboard: typed once, kept for this tab only. */
import { useState } from "preact/hooks";

export function KeyForm({ apiKey, onKey, label = "API key" }: { apiKey: string; onKey(key: string): void; label?: string }) {
  const [draft, setDraft] = useState("");
  if (apiKey) {
    return (
      <div class="key-form">
        <span>{label} set for this tab.</span>
        <button type="button" onClick={() => onKey("")}>
          Forget key
        </button>
      </div>
    );
  }
  return (
    <form
      class="key-form"
      onSubmit={(e) => {
        e.preventDefault();
        onKey(draft.trim());
        setDraft("");
      }}
    >
      <label for="api-key">{label}</label>
      <input id="api-key" type="password" autocomplete="off" spellcheck={false} value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
      <button type="submit">Use key</button>
    </form>
  );
}
