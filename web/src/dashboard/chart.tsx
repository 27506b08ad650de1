/**
 * A line chart drawn as SVG (no chart library: a few lines per chart, and the page's CSP allows no inline
 * style, which SVG attributes are not). One line per series, a dot per non-empty bucket, the y axis from 0 to
 * the largest value; the same numbers as a table under a disclosure, for screen readers and copying.
 */
export interface ChartSeries {
  name: string;
  values: readonly (number | null)[];
}

export const PALETTE = ["#0b5cad", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#be185d"];

const WIDTH = 560;
const HEIGHT = 200;
const PAD = { left: 56, right: 12, top: 12, bottom: 28 };

function format(value: number): string {
  if (value >= 1_000_000) return `${(value / 1_000_000).toFixed(1)}M`;
  if (value >= 10_000) return `${(value / 1000).toFixed(0)}k`;
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k`;
  if (value > 0 && value < 0.01) return value.toExponential(1);
  if (Number.isInteger(value)) return String(value);
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

function bucketLabel(iso: string, bucket: "hour" | "day"): string {
  const d = new Date(iso);
  return bucket === "hour" ? `${String(d.getUTCHours()).padStart(2, "0")}:00` : `${d.getUTCMonth() + 1}/${d.getUTCDate()}`;
}

export function LineChart(props: { id: string; title: string; unit: string; buckets: readonly string[]; bucket: "hour" | "day"; series: readonly ChartSeries[] }) {
  const { buckets, series } = props;
  const max = Math.max(0, ...series.flatMap((s) => s.values.filter((v): v is number => v !== null)));
  const top = max === 0 ? 1 : max * 1.1;
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (i: number) => PAD.left + (buckets.length <= 1 ? plotW / 2 : (i * plotW) / (buckets.length - 1));
  const y = (v: number) => PAD.top + plotH - (v / top) * plotH;
  const ticks = [0, top / 2, top];
  const labelEvery = Math.max(1, Math.ceil(buckets.length / 6));
  const total = series.reduce((sum, s) => sum + s.values.reduce<number>((a, v) => a + (v ?? 0), 0), 0);
  return (
    <figure class="chart" data-testid={`chart-${props.id}`}>
      <figcaption>
        <h3>{props.title}</h3>
      </figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={`${props.title}: ${series.length} series, largest value ${format(max)} ${props.unit}`}>
        {ticks.map((t) => (
          <g key={t}>
            <line x1={PAD.left} x2={WIDTH - PAD.right} y1={y(t)} y2={y(t)} stroke="#d5dbe2" />
            <text x={PAD.left - 6} y={y(t) + 4} text-anchor="end" font-size="11" fill="#4a5360">
              {format(t)}
            </text>
          </g>
        ))}
        {buckets.map((b, i) =>
          i % labelEvery === 0 || i === buckets.length - 1 ? (
            <text key={b} x={x(i)} y={HEIGHT - 8} text-anchor="middle" font-size="11" fill="#4a5360">
              {bucketLabel(b, props.bucket)}
            </text>
          ) : null,
        )}
        {series.map((s, k) => {
          const color = PALETTE[k % PALETTE.length]!;
          const segments: string[] = [];
          let current = "";
          s.values.forEach((v, i) => {
            if (v === null) {
              if (current) segments.push(current);
              current = "";
            } else current += `${current ? " L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
          });
          if (current) segments.push(current);
          return (
            <g key={s.name} data-series={s.name}>
              {segments.map((d, j) => (
                <path key={j} d={d} fill="none" stroke={color} stroke-width="2" />
              ))}
              {s.values.map((v, i) => (v !== null && v > 0 ? <circle key={i} cx={x(i)} cy={y(v)} r="3" fill={color} /> : null))}
            </g>
          );
        })}
      </svg>
      <ul class="legend">
        {series.map((s, k) => (
          <li key={s.name}>
            <svg width="12" height="12" aria-hidden="true">
              <rect width="12" height="12" rx="2" fill={PALETTE[k % PALETTE.length]} />
            </svg>{" "}
            {s.name}
          </li>
        ))}
        {series.length === 0 && <li>No data in this window.</li>}
      </ul>
      <details>
        <summary>Data ({format(total)} {props.unit} in all)</summary>
        <table>
          <thead>
            <tr>
              <th scope="col">Bucket (UTC)</th>
              {series.map((s) => (
                <th key={s.name} scope="col">
                  {s.name}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {buckets.map((b, i) =>
              series.some((s) => (s.values[i] ?? 0) !== 0) ? (
                <tr key={b}>
                  <th scope="row">{new Date(b).toISOString().slice(0, 16).replace("T", " ")}</th>
                  {series.map((s) => (
                    <td key={s.name}>{s.values[i] === null ? "–" : format(s.values[i]!)}</td>
                  ))}
                </tr>
              ) : null,
            )}
          </tbody>
        </table>
      </details>
    </figure>
  );
}
