/**
 * The message box: Enter sends, Shift+Enter breaks the line, Escape stops. Images come from the file
 * picker, drag and drop, or paste, one per turn (docs/VISION.md "Requests"), and only on a vision
 * deployment.
 */
import { useRef, useState } from "preact/hooks";

export const MAX_IMAGE_BYTES = 2 * 1024 * 1024;

export interface ComposerProps {
  text: string;
  image: string | undefined;
  isRunning: boolean;
  canAttach: boolean;
  isEditing: boolean;
  onText(text: string): void;
  onImage(image: string | undefined): void;
  onSend(): void;
  onStop(): void;
  onCancelEdit(): void;
}

function readAsDataUrl(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error("could not read the file"));
    reader.readAsDataURL(file);
  });
}

export function Composer(props: ComposerProps) {
  const fileInput = useRef<HTMLInputElement>(null);
  const [note, setNote] = useState<string | undefined>(undefined);
  const [isDragging, setDragging] = useState(false);

  async function attach(files: readonly File[]) {
    const images = files.filter((f) => f.type.startsWith("image/"));
    if (images.length === 0) return setNote(files.length ? "Only images can be attached." : undefined);
    if (!props.canAttach) return setNote("This deployment reads text only: pick a vision deployment to attach an image.");
    const file = images[0]!;
    const notes: string[] = [];
    if (images.length > 1) notes.push("One image per message: only the first was attached.");
    else if (props.image) notes.push("One image per message: the new image replaced the previous one.");
    if (file.size > MAX_IMAGE_BYTES) notes.push(`This image is ${(file.size / 1048576).toFixed(1)} MiB; the server's default limit is 2 MiB (--max-image-bytes).`);
    setNote(notes.join(" ") || undefined);
    props.onImage(await readAsDataUrl(file));
  }

  return (
    <form
      class={isDragging ? "composer dragging" : "composer"}
      aria-label="Message"
      onSubmit={(e) => {
        e.preventDefault();
        if (!props.isRunning) props.onSend();
      }}
      onDragOver={(e) => {
        if (e.dataTransfer?.types.includes("Files")) {
          e.preventDefault();
          setDragging(true);
        }
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={(e) => {
        e.preventDefault();
        setDragging(false);
        void attach([...(e.dataTransfer?.files ?? [])]);
      }}
    >
      {props.isEditing && (
        <p class="editing">
          Editing an earlier message: sending replaces it and everything after it.{" "}
          <button type="button" class="link" onClick={props.onCancelEdit}>
            Cancel edit
          </button>
        </p>
      )}
      {props.image && (
        <div class="attachment">
          <img src={props.image} alt="Image to send" />
          <button type="button" onClick={() => props.onImage(undefined)}>
            Remove image
          </button>
        </div>
      )}
      <label for="message" class="visually-hidden">
        Message
      </label>
      <textarea
        id="message"
        rows={3}
        value={props.text}
        placeholder={props.canAttach ? "Type a message, or drop or paste an image…" : "Type a message…"}
        onInput={(e) => props.onText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            if (!props.isRunning) props.onSend();
          } else if (e.key === "Escape" && props.isRunning) {
            e.preventDefault();
            props.onStop();
          }
        }}
        onPaste={(e) => {
          const files = [...(e.clipboardData?.files ?? [])];
          if (files.some((f) => f.type.startsWith("image/"))) {
            e.preventDefault();
            void attach(files);
          }
        }}
        aria-describedby="composer-help"
      />
      <div class="composer-bar">
        <input
          ref={fileInput}
          type="file"
          accept="image/*"
          class="visually-hidden"
          tabIndex={-1}
          aria-hidden="true"
          onChange={(e) => {
            void attach([...(e.currentTarget.files ?? [])]);
            e.currentTarget.value = "";
          }}
        />
        <button type="button" disabled={!props.canAttach} onClick={() => fileInput.current?.click()} aria-describedby="image-rule">
          Attach image
        </button>
        <span id="image-rule" class="hint">
          {props.canAttach
            ? "One image per message; the model reads only the conversation's latest image (as on Azure)."
            : "Images need a vision deployment (Phi-3-vision, Phi-3.5-vision)."}
        </span>
        {props.isRunning ? (
          <button type="button" class="stop" onClick={props.onStop}>
            Stop
          </button>
        ) : (
          <button type="submit" class="primary">
            Send
          </button>
        )}
      </div>
      <p id="composer-help" class="hint">
        Enter sends, Shift+Enter starts a new line, Escape stops the answer.
      </p>
      {note && (
        <p class="note" role="status">
          {note}
        </p>
      )}
    </form>
  );
}
