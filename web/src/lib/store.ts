/** Conversations kept in this browser's IndexedDB (docs/PLAYGROUND.md "Conversations"); nothing goes to the server. */
import { openDB, type IDBPDatabase } from "idb";
import type { Conversation } from "./conversation.ts";

const DB_NAME = "phiserve-playground";
const STORE = "conversations";

let db: Promise<IDBPDatabase> | undefined;

function open(): Promise<IDBPDatabase> {
  db ??= openDB(DB_NAME, 1, {
    upgrade(database) {
      database.createObjectStore(STORE, { keyPath: "id" }).createIndex("updatedAt", "updatedAt");
    },
  });
  return db;
}

export async function listConversations(): Promise<Conversation[]> {
  const all = (await (await open()).getAllFromIndex(STORE, "updatedAt")) as Conversation[];
  return all.reverse();
}

export async function saveConversation(conversation: Conversation): Promise<void> {
  // A structured clone of plain data: Preact state may hold the same objects.
  await (await open()).put(STORE, JSON.parse(JSON.stringify(conversation)) as Conversation);
}

export async function deleteConversation(id: string): Promise<void> {
  await (await open()).delete(STORE, id);
}

/** A conversation as a downloadable JSON file (a blob: URL the caller revokes). */
export function exportUrl(conversations: readonly Conversation[]): string {
  const body = JSON.stringify({ format: "phiserve-playground/1", exportedAt: new Date().toISOString(), conversations }, null, 2);
  return URL.createObjectURL(new Blob([body], { type: "application/json" }));
}
