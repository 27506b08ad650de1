/**
 * A deployment's content filter: its policy and its classifiers, run together on one text. Each
 * classifier gets the policy's timeout; one that fails or times out is left out, counted, and — when
 * the others found nothing to block — the text goes on annotated `content_filter_error`, as Azure
 * does when its filter cannot run (docs/SAFETY.md "Annotations").
 */
import { combineClassifications, type Classification, type TextClassifier, type TextRole } from "./classifier.ts";
import { describePolicy, FILTER_ERROR_RESULTS, judge, type ContentSafetyPolicy, type Verdict } from "./content-policy.ts";

export interface ContentFilterHooks {
  /** A classifier failed or timed out (a metric counts it). */
  onClassifierError?(classifier: string, role: TextRole, error: unknown): void;
  /** A text was blocked. */
  onFiltered?(role: TextRole, reasons: readonly string[]): void;
}

export class ContentFilter {
  constructor(
    readonly policy: Readonly<ContentSafetyPolicy>,
    private readonly classifiers: readonly TextClassifier[],
    private readonly hooks: ContentFilterHooks = {},
  ) {}

  /** False when nothing would be checked (mode `off`, or no classifier). */
  get active(): boolean {
    return this.policy.mode !== "off" && this.classifiers.length > 0;
  }

  /** Annotations go into responses. */
  get annotates(): boolean {
    return this.active && this.policy.annotations;
  }

  classifierNames(): string[] {
    return this.classifiers.map((c) => c.name);
  }

  /** The policy in one line, for the response header. */
  describe(): string {
    return this.active ? describePolicy(this.policy, this.classifierNames()) : "off";
  }

  /** The same classifiers under another mode (a trusted caller's override); `this` when nothing changes. */
  withMode(mode: ContentSafetyPolicy["mode"]): ContentFilter {
    return mode === this.policy.mode ? this : new ContentFilter({ ...this.policy, mode }, this.classifiers, this.hooks);
  }

  /** Classifies `text` with every classifier and judges it under the policy. `signal` ends the wait early. */
  async check(text: string, role: TextRole, signal?: AbortSignal): Promise<Verdict> {
    const settled = await Promise.allSettled(this.classifiers.map((c) => this.classifyWithin(c, text, role, signal)));
    const found: Classification[] = [];
    let failed = false;
    settled.forEach((r, i) => {
      if (r.status === "fulfilled") found.push(r.value);
      else {
        failed = true;
        this.hooks.onClassifierError?.(this.classifiers[i]!.name, role, r.reason);
      }
    });
    if (signal?.aborted) throw signal.reason;
    const verdict = judge(this.policy, role, combineClassifications(found));
    if (verdict.filtered) this.hooks.onFiltered?.(role, verdict.reasons);
    // What the working classifiers found still blocks; otherwise the text goes on, marked as not filtered.
    else if (failed) return { filtered: false, reasons: [], results: { ...FILTER_ERROR_RESULTS } };
    return verdict;
  }

  async close(): Promise<void> {
    await Promise.all(this.classifiers.map((c) => c.close?.()));
  }

  private async classifyWithin(classifier: TextClassifier, text: string, role: TextRole, outer: AbortSignal | undefined): Promise<Classification> {
    // A timer of our own (AbortSignal.timeout's is unref'd: nothing would wait for it), cleared once answered.
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new Error(`${classifier.name} did not answer within ${this.policy.timeoutMs} ms`)), this.policy.timeoutMs);
    const signal = outer ? AbortSignal.any([outer, timeout.signal]) : timeout.signal;
    // A classifier that ignores its signal is not waited for past the timeout either.
    return new Promise<Classification>((resolve, reject) => {
      const abort = () => reject(signal.reason);
      if (signal.aborted) return abort();
      signal.addEventListener("abort", abort, { once: true });
      classifier.classify(text, role, signal).then(resolve, reject).finally(() => {
        clearTimeout(timer);
        signal.removeEventListener("abort", abort);
      });
    }).finally(() => clearTimeout(timer));
  }
}
