/**
 * The usage dashboard (docs/PLAYGROUND.md "Dashboard"): the admin API's usage series and report
 * (docs/ADMIN-API.md "Usage") as charts by deployment or by key, with an admin key typed in.
 */
import { useEffect, useState } from "preact/hooks";
import type { DeploymentView, PercentilesView, UsageReportView, UsageSeriesReportView, UsageSeriesView } from "../../../src/protocol/admin.schema.ts";
import { ApiError, getJson } from "../lib/api.ts";
import { KeyForm } from "../lib/key-form.tsx";
import { LineChart } from "./chart.tsx";

const STORAGE_KEY = "phiserve.adminKey";
const loadKey = () => {
  try {
    return sessionStorage.getItem(STORAGE_KEY) ?? "";
  } catch {
    return "";
  }
};
const storeKey = (key: string) => {
  try {
    if (key) sessionStorage.setItem(STORAGE_KEY, key);
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // memory only
  }
};

const WINDOWS = {
  "24h": { label: "Last 24 hours, by hour", since: "24h", bucket: "hour" },
  "7d": { label: "Last 7 days, by hour", since: "7d", bucket: "hour" },
  "30d": { label: "Last 30 days, by day", since: "30d", bucket: "day" },
} as const;
type WindowId = keyof typeof WINDOWS;
type Split = "deployment" | "key";

interface Data {
  series: UsageSeriesReportView;
  report: UsageReportView;
  deployments: DeploymentView[];
  loadedAt: Date;
}

const round = (value: number) => (value >= 100 ? Math.round(value) : Math.round(value * 10) / 10);
const pct = (p: PercentilesView | null, unit: string) => (p ? `${round(p.p50)} / ${round(p.p90)} / ${round(p.p99)} ${unit}`.trim() : "–");
const usd = (value: number) => `$${value < 0.01 && value > 0 ? value.toFixed(6) : value.toFixed(4)}`;
const pick = (series: readonly UsageSeriesView[], f: (s: UsageSeriesView) => (number | null)[]) => series.map((s) => ({ name: s.name, values: f(s) }));

export function Dashboard() {
  const [key, setKey] = useState(loadKey);
  const [windowId, setWindowId] = useState<WindowId>("24h");
  const [split, setSplit] = useState<Split>("deployment");
  const [data, setData] = useState<Data | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [isLoading, setLoading] = useState(false);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    if (!key) {
      setData(undefined);
      setError("Enter an admin key: a key given to the server with --admin-key, or a stored key created with --admin.");
      return;
    }
    const controller = new AbortController();
    const { since, bucket } = WINDOWS[windowId];
    setLoading(true);
    Promise.all([
      getJson<UsageSeriesReportView>(`/admin/usage/series?since=${since}&bucket=${bucket}&by=${split}`, key, controller.signal),
      getJson<UsageReportView>(`/admin/usage?since=${since}&by=${split}`, key, controller.signal),
      getJson<{ data: DeploymentView[] }>("/admin/deployments", key, controller.signal),
    ]).then(
      ([series, report, deployments]) => {
        setData({ series, report, deployments: deployments.data, loadedAt: new Date() });
        setError(undefined);
        setLoading(false);
      },
      (e: unknown) => {
        if (controller.signal.aborted) return;
        setLoading(false);
        setData(undefined);
        if (e instanceof ApiError && e.status === 401) setError("The server did not accept this key.");
        else if (e instanceof ApiError && e.status === 403) setError(`This key may not use the admin API: ${e.message}`);
        else if (e instanceof ApiError && e.status === 404) setError("This server has no usage store (the admin usage API is not served).");
        else setError(`Could not load usage: ${(e as Error).message}`);
      },
    );
    return () => controller.abort();
  }, [key, windowId, split, tick]);

  const series = data?.series.series ?? [];
  const total = data?.report.total;
  const chart = (id: string, title: string, unit: string, f: (s: UsageSeriesView) => (number | null)[]) =>
    data && <LineChart id={id} title={title} unit={unit} buckets={data.series.buckets} bucket={data.series.bucket} series={pick(series, f)} />;

  return (
    <>
      <header class="top">
        <h1>phiserve usage</h1>
        <KeyForm label="Admin key" apiKey={key} onKey={(k) => (storeKey(k), setKey(k))} />
        <a href="/playground">Playground</a>
      </header>
      <main class="dashboard">
        <form class="controls" aria-label="What to show" onSubmit={(e) => (e.preventDefault(), setTick(tick + 1))}>
          <span class="field inline">
            <label for="window">Window</label>
            <select id="window" value={windowId} onChange={(e) => setWindowId(e.currentTarget.value as WindowId)}>
              {Object.entries(WINDOWS).map(([id, w]) => (
                <option key={id} value={id}>
                  {w.label}
                </option>
              ))}
            </select>
          </span>
          <fieldset class="inline">
            <legend>Split by</legend>
            {(["deployment", "key"] as const).map((s) => (
              <label class="check" key={s}>
                <input type="radio" name="split" value={s} checked={split === s} onChange={() => setSplit(s)} /> {s}
              </label>
            ))}
          </fieldset>
          <button type="submit">Refresh</button>
          <span class="hint" role="status">
            {isLoading ? "Loading…" : data ? `Updated ${data.loadedAt.toLocaleTimeString()} (times in UTC)` : ""}
          </span>
        </form>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        {data && total && (
          <>
            <section aria-labelledby="totals-title">
              <h2 id="totals-title">In this window</h2>
              <dl class="tiles" data-testid="totals">
                <div>
                  <dt>Requests</dt>
                  <dd data-testid="total-requests">{total.requests}</dd>
                </div>
                <div>
                  <dt>Tokens (prompt + completion)</dt>
                  <dd>
                    {total.promptTokens} + {total.completionTokens}
                  </dd>
                </div>
                <div>
                  <dt>Throttled (429)</dt>
                  <dd>{total.throttled}</dd>
                </div>
                <div>
                  <dt>Filtered</dt>
                  <dd>{total.filtered}</dd>
                </div>
                <div>
                  <dt>First token p50 / p90 / p99</dt>
                  <dd>{pct(total.ttftMs, "ms")}</dd>
                </div>
                <div>
                  <dt>Tokens/s p50 / p90 / p99</dt>
                  <dd>{pct(total.tokensPerSecond, "")}</dd>
                </div>
                <div>
                  <dt>Estimated cost</dt>
                  <dd>{usd(total.costUsd)}</dd>
                </div>
              </dl>
            </section>
            <section aria-labelledby="charts-title">
              <h2 id="charts-title">Over time, by {split}</h2>
              <div class="charts">
                {chart("requests", "Requests", "requests", (s) => s.requests)}
                {chart("tokens", "Tokens (prompt + completion)", "tokens", (s) => s.promptTokens.map((p, i) => p + (s.completionTokens[i] ?? 0)))}
                {chart("throttled", "Throttled requests (429)", "requests", (s) => s.throttled)}
                {chart("filtered", "Filtered requests (content filter)", "requests", (s) => s.filtered)}
                {chart("ttft", "Time to first token, p50 (ms)", "ms", (s) => s.ttftMsP50)}
                {chart("ttft90", "Time to first token, p90 (ms)", "ms", (s) => s.ttftMsP90)}
                {chart("tps", "Tokens per second, p50", "tokens/s", (s) => s.tokensPerSecondP50)}
                {chart("cost", "Estimated cost (USD)", "USD", (s) => s.costUsd)}
              </div>
            </section>
            <section aria-labelledby="table-title">
              <h2 id="table-title">By {split}</h2>
              <div class="table-wrap">
                <table class="report" data-testid="report">
                  <thead>
                    <tr>
                      <th scope="col">{split}</th>
                      <th scope="col">Requests</th>
                      <th scope="col">Prompt tokens</th>
                      <th scope="col">Completion tokens</th>
                      <th scope="col">Throttled</th>
                      <th scope="col">Filtered</th>
                      <th scope="col">First token p50/p90/p99</th>
                      <th scope="col">Tokens/s p50/p90/p99</th>
                      <th scope="col">Cost</th>
                    </tr>
                  </thead>
                  <tbody>
                    {[...data.report.rows, data.report.total].map((r) => (
                      <tr key={r.group}>
                        <th scope="row">{r.group}</th>
                        <td>{r.requests}</td>
                        <td>{r.promptTokens}</td>
                        <td>{r.completionTokens}</td>
                        <td>{r.throttled}</td>
                        <td>{r.filtered}</td>
                        <td>{pct(r.ttftMs, "ms")}</td>
                        <td>{pct(r.tokensPerSecond, "")}</td>
                        <td>{usd(r.costUsd)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              <p class="hint">
                Costs use the configured prices per 1,000 tokens (default {usd(data.report.prices.default.promptPer1k)} prompt, {usd(data.report.prices.default.completionPer1k)} completion).
              </p>
            </section>
            <section aria-labelledby="deployments-title">
              <h2 id="deployments-title">Deployments</h2>
              <ul class="deployments">
                {data.deployments.map((d) => (
                  <li key={d.name}>
                    <strong>{d.name}</strong> ({d.model}){d.default ? ", default" : ""}: {d.state}
                  </li>
                ))}
              </ul>
            </section>
          </>
        )}
      </main>
    </>
  );
}
