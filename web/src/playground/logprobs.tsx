/** The logprobs view: each token coloured by its probability; hover or focus shows the top alternatives. */
import { useState } from "preact/hooks";
import type { TokenLogprob } from "../lib/api.ts";

/** Probability buckets, high to low: the CSS classes lp4 … lp0. */
const BUCKETS = [0.9, 0.6, 0.3, 0.1];

export const bucketOf = (logprob: number): number => {
  const p = Math.exp(logprob);
  const index = BUCKETS.findIndex((b) => p >= b);
  return index === -1 ? 0 : 4 - index;
};

const percent = (logprob: number): string => `${(Math.exp(logprob) * 100).toFixed(1)}%`;
const visible = (token: string): string => token.replace(/\n/g, "↵").replace(/ /g, "·") || "∅";

export function LogprobView({ tokens }: { tokens: readonly TokenLogprob[] }) {
  const [active, setActive] = useState<number | undefined>(undefined);
  return (
    <div class="logprobs">
      <p class="legend" aria-hidden="true">
        <span class="tok lp4">≥ 90%</span> <span class="tok lp3">≥ 60%</span> <span class="tok lp2">≥ 30%</span> <span class="tok lp1">≥ 10%</span>{" "}
        <span class="tok lp0">&lt; 10%</span>
      </p>
      <p class="tokens">
        {tokens.map((t, i) => (
          <span
            key={i}
            class={`tok lp${bucketOf(t.logprob)}`}
            tabIndex={0}
            aria-describedby={active === i ? "logprob-tip" : undefined}
            onMouseEnter={() => setActive(i)}
            onMouseLeave={() => setActive(undefined)}
            onFocus={() => setActive(i)}
            onBlur={() => setActive(undefined)}
          >
            {t.token}
            {active === i && (
              <span class="tip" role="tooltip" id="logprob-tip">
                <strong>{visible(t.token)}</strong> {percent(t.logprob)}
                {(t.top_logprobs ?? []).length > 0 && (
                  <table>
                    <tbody>
                      {(t.top_logprobs ?? []).map((alt, j) => (
                        <tr key={j}>
                          <td>{visible(alt.token)}</td>
                          <td>{percent(alt.logprob)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                )}
              </span>
            )}
          </span>
        ))}
      </p>
    </div>
  );
}
