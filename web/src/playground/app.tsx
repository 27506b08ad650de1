/**
 * The playground (docs/PLAYGROUND.md): one conversation at a time, sent to one deployment or, side by side,
 * to two; every request parameter; answers streamed with their figures; conversations in IndexedDB.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, authHeaders, listDeployments, type Deployment } from "../lib/api.ts";
import { loadApiKey, saveApiKey } from "../lib/key.ts";
import { needsPassThrough, newConversation, ParamError, titleOf, toRequestBody, toWireParams, type Conversation, type Message, type Params } from "../lib/conversation.ts";
import { deleteConversation, listConversations, saveConversation } from "../lib/store.ts";
import { runAnswer } from "./run.ts";
import { Transcript } from "./transcript.tsx";
import { Settings } from "./settings.tsx";
import { Composer } from "./composer.tsx";
import { CodeDialog } from "./code-dialog.tsx";
import { Sidebar } from "./sidebar.tsx";
import { KeyForm } from "../lib/key-form.tsx";

/** The first problem with the parameters as typed, or undefined. */
function paramErrorOf(params: Params): { field: keyof Params; message: string } | undefined {
  try {
    toWireParams(params);
    return undefined;
  } catch (error) {
    if (!(error instanceof ParamError)) throw error;
    return { field: error.field, message: error.message };
  }
}

/** Replaces message `index` of pane `paneIndex` (or appends when index = length). */
function withMessage(c: Conversation, paneIndex: number, index: number, message: Message): Conversation {
  const panes = c.panes.map((p, i) => (i === paneIndex ? { ...p, messages: [...p.messages.slice(0, index), message, ...p.messages.slice(index + 1)] } : p));
  return { ...c, panes, updatedAt: Date.now() };
}

export function App() {
  const [apiKey, setApiKey] = useState(loadApiKey);
  const [deployments, setDeployments] = useState<Deployment[] | undefined>(undefined);
  const [loadError, setLoadError] = useState<string | undefined>(undefined);
  const [conversations, setConversations] = useState<Conversation[]>([]);
  const [conv, setConv] = useState<Conversation>(() => newConversation(""));
  const [running, setRunning] = useState<readonly boolean[]>([]);
  const [text, setText] = useState("");
  const [image, setImage] = useState<string | undefined>(undefined);
  const [editIndex, setEditIndex] = useState<number | undefined>(undefined);
  const [paramError, setParamError] = useState<{ field: keyof Params; message: string } | undefined>(undefined);
  const [showCode, setShowCode] = useState(false);
  const controllers = useRef<(AbortController | undefined)[]>([]);
  const isRunning = running.some(Boolean);

  useEffect(() => {
    void listConversations().then(setConversations, () => setConversations([]));
  }, []);

  useEffect(() => {
    setLoadError(undefined);
    listDeployments(apiKey).then(
      (list) => {
        setDeployments(list);
        setConv((c) => (c.panes[0]!.deployment || !list[0] ? c : { ...c, panes: c.panes.map((p) => ({ ...p, deployment: p.deployment || list[0]!.id })) }));
      },
      (error: unknown) => {
        setDeployments(undefined);
        setLoadError(error instanceof ApiError && error.status === 401 ? "Enter an API key to use this server." : `Could not list deployments: ${(error as Error).message}`);
      },
    );
  }, [apiKey]);

  // Keep the conversation in IndexedDB once it has a message: at once when no answer is streaming, debounced
  // while one is (a stream updates the conversation 20 times a second).
  useEffect(() => {
    if (!conv.panes.some((p) => p.messages.length > 0)) return;
    const timer = setTimeout(
      () => void saveConversation(conv).then(() => setConversations((list) => [conv, ...list.filter((c) => c.id !== conv.id)])),
      isRunning ? 400 : 0,
    );
    return () => clearTimeout(timer);
  }, [conv, isRunning]);

  const byId = useMemo(() => new Map((deployments ?? []).map((d) => [d.id, d])), [deployments]);
  const canAttach = conv.panes.some((p) => byId.get(p.deployment)?.isVision === true);

  function headersFor(params: Params): Record<string, string> {
    return { ...authHeaders(apiKey), ...(needsPassThrough(params) ? { "extra-parameters": "pass-through" } : {}) };
  }

  async function runPane(snapshot: Conversation, paneIndex: number) {
    const pane = snapshot.panes[paneIndex]!;
    const controller = new AbortController();
    controllers.current[paneIndex] = controller;
    setRunning((r) => Object.assign([...r], { [paneIndex]: true }));
    const slot = pane.messages.length;
    setConv((c) => withMessage(c, paneIndex, slot, { role: "assistant", content: "", stats: {} }));
    try {
      await runAnswer({
        body: toRequestBody(snapshot, pane),
        headers: headersFor(snapshot.params),
        signal: controller.signal,
        onUpdate: (message) => setConv((c) => withMessage(c, paneIndex, slot, message)),
      });
    } finally {
      controllers.current[paneIndex] = undefined;
      setRunning((r) => Object.assign([...r], { [paneIndex]: false }));
    }
  }

  function checkParams(params: Params): boolean {
    const error = paramErrorOf(params);
    setParamError(error);
    return error === undefined;
  }

  // Stable callbacks: the settings panel is memoised and need not re-render while an answer streams.
  const onSystem = useCallback((system: string) => setConv((c) => ({ ...c, system })), []);
  const onParams = useCallback((params: Params) => {
    setConv((c) => ({ ...c, params }));
    setParamError((previous) => (previous ? paramErrorOf(params) : previous));
  }, []);

  function send() {
    if (isRunning || (!text.trim() && !image) || !checkParams(conv.params)) return;
    const user: Message = { role: "user", content: text, ...(image ? { image } : {}) };
    const panes = conv.panes.map((p) => ({ ...p, messages: [...(editIndex === undefined ? p.messages : p.messages.slice(0, editIndex)), user] }));
    const title = conv.panes[0]!.messages.length === 0 || editIndex === 0 ? titleOf(text) : conv.title;
    const next = { ...conv, title, panes, updatedAt: Date.now() };
    setConv(next);
    setText("");
    setImage(undefined);
    setEditIndex(undefined);
    next.panes.forEach((_, i) => void runPane(next, i));
  }

  function regenerate(paneIndex: number) {
    if (isRunning || !checkParams(conv.params)) return;
    const pane = conv.panes[paneIndex]!;
    if (pane.messages.at(-1)?.role !== "assistant") return;
    const next = { ...conv, panes: conv.panes.map((p, i) => (i === paneIndex ? { ...p, messages: p.messages.slice(0, -1) } : p)) };
    setConv(next);
    void runPane(next, paneIndex);
  }

  function edit(index: number) {
    const message = conv.panes[0]!.messages[index];
    if (!message || isRunning) return;
    setText(message.content);
    setImage(message.image);
    setEditIndex(index);
    document.getElementById("message")?.focus();
  }

  const stop = () => controllers.current.forEach((c) => c?.abort());

  function setCompare(on: boolean) {
    setConv((c) => {
      if (!on) return { ...c, panes: c.panes.slice(0, 1) };
      const first = c.panes[0]!;
      const other = (deployments ?? []).find((d) => d.id !== first.deployment)?.id ?? first.deployment;
      return { ...c, panes: [first, { deployment: other, messages: first.messages.map((m) => ({ ...m })) }] };
    });
  }

  const setDeployment = (paneIndex: number, id: string) => setConv((c) => ({ ...c, panes: c.panes.map((p, i) => (i === paneIndex ? { ...p, deployment: id } : p)) }));

  function openConversation(id: string) {
    const found = conversations.find((c) => c.id === id);
    if (found && !isRunning) {
      setConv(found);
      setEditIndex(undefined);
    }
  }

  function startNew() {
    if (isRunning) return;
    setConv(newConversation(deployments?.[0]?.id ?? ""));
    setEditIndex(undefined);
    setText("");
    setImage(undefined);
  }

  async function remove(id: string) {
    await deleteConversation(id);
    setConversations((list) => list.filter((c) => c.id !== id));
    if (id === conv.id) startNew();
  }

  const snippetInput = () => {
    const pending: Message[] = text.trim() || image ? [{ role: "user", content: text, ...(image ? { image } : {}) }] : [];
    const pane = conv.panes[0]!;
    const messages = [...(editIndex === undefined ? pane.messages : pane.messages.slice(0, editIndex)), ...pending];
    const body = toRequestBody(conv, { ...pane, messages: messages.length ? messages : [{ role: "user", content: "Say hi" }] });
    return { origin: location.origin, body, passThrough: needsPassThrough(conv.params) };
  };

  const deploymentSelect = (paneIndex: number, label: string) => (
    <span class="field inline">
      <label for={`deployment-${paneIndex}`}>{label}</label>
      <select id={`deployment-${paneIndex}`} value={conv.panes[paneIndex]?.deployment ?? ""} disabled={isRunning} onChange={(e) => setDeployment(paneIndex, e.currentTarget.value)}>
        {(deployments ?? []).map((d) => (
          <option key={d.id} value={d.id}>
            {d.id} ({d.modelName}
            {d.isVision ? ", images" : ""})
          </option>
        ))}
      </select>
    </span>
  );

  return (
    <>
      <a
        class="skip"
        href="#message"
        onClick={(e) => {
          e.preventDefault();
          document.getElementById("message")?.focus();
        }}
      >
        Skip to the message box
      </a>
      <header class="top">
        <h1>phiserve playground</h1>
        <KeyForm
          apiKey={apiKey}
          onKey={(key) => {
            saveApiKey(key);
            setApiKey(key);
            // The form is replaced: focus goes on to the message box rather than back to the page's start.
            if (key) requestAnimationFrame(() => document.getElementById("message")?.focus());
          }}
        />
        <a href="/dashboard">Usage dashboard</a>
      </header>
      <div class="layout">
        <Sidebar conversations={conversations} currentId={conv.id} onSelect={openConversation} onNew={startNew} onDelete={(id) => void remove(id)} />
        <main class="chat">
          <div class="toolbar">
            {deploymentSelect(0, "Deployment")}
            <label class="check">
              <input type="checkbox" checked={conv.panes.length > 1} disabled={isRunning || !deployments} onChange={(e) => setCompare(e.currentTarget.checked)} /> Compare side by side
            </label>
            {conv.panes.length > 1 && deploymentSelect(1, "with")}
            <button type="button" onClick={() => checkParams(conv.params) && setShowCode(true)}>
              View code
            </button>
          </div>
          {loadError && (
            <p class="error" role="alert">
              {loadError}
            </p>
          )}
          <div class={conv.panes.length > 1 ? "panes two" : "panes"}>
            {conv.panes.map((pane, i) => (
              <Transcript
                key={i}
                pane={pane}
                paneIndex={i}
                label={conv.panes.length > 1 ? `${pane.deployment} (${i === 0 ? "left" : "right"})` : pane.deployment || "Conversation"}
                isRunning={running[i] === true}
                onEdit={edit}
                onRegenerate={regenerate}
              />
            ))}
          </div>
          <Composer
            text={text}
            image={image}
            isRunning={isRunning}
            canAttach={canAttach}
            isEditing={editIndex !== undefined}
            onText={setText}
            onImage={setImage}
            onSend={send}
            onStop={stop}
            onCancelEdit={() => (setEditIndex(undefined), setText(""), setImage(undefined))}
          />
        </main>
        <Settings
          system={conv.system}
          params={conv.params}
          error={paramError}
          onSystem={onSystem}
          onParams={onParams}
        />
      </div>
      {showCode && <CodeDialog input={snippetInput()} onClose={() => setShowCode(false)} />}
    </>
  );
}
