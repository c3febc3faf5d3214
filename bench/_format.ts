// Number formatting shared by the progress lines (bench/_measure.ts) and
// the report (bench/_report.ts): rates, sizes, times, ratios; "–" for a
// figure that is missing.

// ---------------------------------------------------------------- formatting

export function formatRate(value: number): string {
  if (!Number.isFinite(value)) return "–";
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)}M/s`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(0)}k/s`;
  return `${value.toFixed(0)}/s`;
}

export function formatBytes(value: number): string {
  if (!Number.isFinite(value)) return "–";
  const sign = value < 0 ? "-" : "";
  value = Math.abs(value);
  if (value >= 1024 * 1024) {
    return `${sign}${(value / 1024 / 1024).toFixed(1)} MB`;
  }
  if (value >= 1024) return `${sign}${(value / 1024).toFixed(1)} KB`;
  return `${sign}${value.toFixed(0)} B`;
}

export function formatMs(us: unknown): string {
  const value = Number(us) / 1000;
  if (!Number.isFinite(value)) return "–";
  return value >= 100 ? `${value.toFixed(0)} ms` : `${value.toFixed(1)} ms`;
}

export function formatRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : "–";
}

export function formatPercent(value: unknown): string {
  const n = Number(value);
  return Number.isFinite(n) ? `${Math.round(n * 100)}%` : "–";
}

export function formatFixed(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "–";
}
