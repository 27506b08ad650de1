/**
 * The API key: typed once, kept in this tab's sessionStorage (gone when the tab closes), sent only in the
 * `api-key` header of same-origin requests, never in a URL (docs/PLAYGROUND.md "API key").
 */
const STORAGE_KEY = "phiserve.apiKey";

export function loadApiKey(): string {
  try {
    return sessionStorage.getItem(STORAGE_KEY) ?? "";
  } catch {
    return "";
  }
}

export function saveApiKey(key: string): void {
  try {
    if (key) sessionStorage.setItem(STORAGE_KEY, key);
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // Storage refused (private mode quotas): the key lives in memory for this page only.
  }
}
