/** Conversations kept in this browser: pick, start, delete, export as JSON. */
import type { Conversation } from "../lib/conversation.ts";
import { exportUrl } from "../lib/store.ts";

export interface SidebarProps {
  conversations: readonly Conversation[];
  currentId: string;
  onSelect(id: string): void;
  onNew(): void;
  onDelete(id: string): void;
}

function download(conversations: readonly Conversation[], name: string) {
  const url = exportUrl(conversations);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function Sidebar({ conversations, currentId, onSelect, onNew, onDelete }: SidebarProps) {
  const current = conversations.find((c) => c.id === currentId);
  return (
    <nav class="sidebar" aria-label="Conversations">
      <h2>Conversations</h2>
      <div class="row">
        <button type="button" onClick={onNew}>
          New
        </button>
        <button type="button" disabled={!current} onClick={() => current && download([current], `conversation-${current.id}.json`)}>
          Export
        </button>
        <button type="button" disabled={conversations.length === 0} onClick={() => download(conversations, "phiserve-conversations.json")}>
          Export all
        </button>
      </div>
      <ul>
        {conversations.map((c) => (
          <li key={c.id} class={c.id === currentId ? "current" : ""}>
            <button type="button" class="title" aria-current={c.id === currentId ? "true" : undefined} onClick={() => onSelect(c.id)}>
              {c.title}
            </button>
            <button type="button" class="delete" aria-label={`Delete “${c.title}”`} onClick={() => onDelete(c.id)}>
              ×
            </button>
          </li>
        ))}
      </ul>
      <p class="hint">Kept in this browser (IndexedDB) only.</p>
    </nav>
  );
}
