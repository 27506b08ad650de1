/** The request's system message and parameters: every field the chat API takes; empty = the server's default. */
import { memo } from "preact/compat";
import type { Params } from "../lib/conversation.ts";

export interface SettingsProps {
  system: string;
  params: Params;
  error: { field: keyof Params; message: string } | undefined;
  onSystem(text: string): void;
  onParams(params: Params): void;
}

interface FieldSpec {
  field: keyof Params;
  label: string;
  hint: string;
  step?: string;
  min?: string;
  max?: string;
}

const NUMBERS: FieldSpec[] = [
  { field: "temperature", label: "Temperature", hint: "0–2, default 0.7", step: "0.1", min: "0", max: "2" },
  { field: "topP", label: "Top P", hint: "0–1, default 1", step: "0.05", min: "0", max: "1" },
  { field: "maxTokens", label: "Max tokens", hint: "empty: the rest of the context", step: "1", min: "0" },
  { field: "seed", label: "Seed", hint: "integer; same seed, same answer", step: "1" },
  { field: "presencePenalty", label: "Presence penalty", hint: "−2–2, default 0", step: "0.1", min: "-2", max: "2" },
  { field: "frequencyPenalty", label: "Frequency penalty", hint: "−2–2, default 0", step: "0.1", min: "-2", max: "2" },
];

export const Settings = memo(function Settings({ system, params, error, onSystem, onParams }: SettingsProps) {
  const set = <K extends keyof Params>(field: K, value: Params[K]) => onParams({ ...params, [field]: value });
  const errorFor = (field: keyof Params) =>
    error?.field === field ? (
      <span class="field-error" id={`err-${field}`} role="alert">
        {error.message}
      </span>
    ) : null;
  const invalid = (field: keyof Params) => (error?.field === field ? { "aria-invalid": true, "aria-describedby": `err-${field}` } : {});
  return (
    <aside class="settings" aria-label="Parameters">
      <h2>Setup</h2>
      <label for="system">System message</label>
      <textarea id="system" rows={4} value={system} placeholder="You are a helpful assistant." onInput={(e) => onSystem(e.currentTarget.value)} />
      <h2>Parameters</h2>
      <div class="grid">
        {NUMBERS.map(({ field, label, hint, step, min, max }) => (
          <div class="field" key={field}>
            <label for={`p-${field}`}>{label}</label>
            <input
              id={`p-${field}`}
              name={field}
              type="number"
              inputMode="decimal"
              step={step}
              min={min}
              max={max}
              placeholder={hint}
              title={hint}
              value={String(params[field])}
              onInput={(e) => set(field, e.currentTarget.value as never)}
              {...invalid(field)}
            />
            {errorFor(field)}
          </div>
        ))}
      </div>
      <label for="p-stop">Stop sequences (one per line, up to 4)</label>
      <textarea id="p-stop" rows={2} value={params.stop} onInput={(e) => set("stop", e.currentTarget.value)} {...invalid("stop")} />
      {errorFor("stop")}
      <label for="p-format">Response format</label>
      <select id="p-format" value={params.responseFormat} onChange={(e) => set("responseFormat", e.currentTarget.value as Params["responseFormat"])}>
        <option value="text">text</option>
        <option value="json_object">json_object</option>
        <option value="json_schema">json_schema</option>
      </select>
      {params.responseFormat === "json_schema" && (
        <fieldset class="schema">
          <legend>JSON schema</legend>
          <label for="p-schema-name">Name</label>
          <input id="p-schema-name" value={params.schemaName} onInput={(e) => set("schemaName", e.currentTarget.value)} {...invalid("schemaName")} />
          {errorFor("schemaName")}
          <label for="p-schema">Schema (JSON)</label>
          <textarea id="p-schema" class="code" rows={10} spellcheck={false} value={params.schema} onInput={(e) => set("schema", e.currentTarget.value)} {...invalid("schema")} />
          {errorFor("schema") ?? <SchemaStatus text={params.schema} />}
          <label class="check">
            <input type="checkbox" checked={params.schemaStrict} onChange={(e) => set("schemaStrict", e.currentTarget.checked)} /> strict
          </label>
        </fieldset>
      )}
      <label class="check">
        <input type="checkbox" id="p-logprobs" checked={params.logprobs} onChange={(e) => set("logprobs", e.currentTarget.checked)} /> Log probabilities
      </label>
      {params.logprobs && (
        <div class="field">
          <label for="p-top-logprobs">Top alternatives (0–20)</label>
          <input id="p-top-logprobs" type="number" min="0" max="20" step="1" value={params.topLogprobs} onInput={(e) => set("topLogprobs", e.currentTarget.value)} {...invalid("topLogprobs")} />
          {errorFor("topLogprobs")}
        </div>
      )}
      <p class="hint">Log probabilities are one of Phi's extra parameters: the request is sent with extra-parameters: pass-through.</p>
    </aside>
  );
});

function SchemaStatus({ text }: { text: string }) {
  try {
    const schema = JSON.parse(text) as unknown;
    const ok = typeof schema === "object" && schema !== null && !Array.isArray(schema);
    return <span class={ok ? "hint" : "field-error"}>{ok ? "Valid JSON." : "The schema must be a JSON object."}</span>;
  } catch (error) {
    return <span class="field-error">Not valid JSON: {(error as Error).message}</span>;
  }
}
