// Package-internal: the Prometheus text format 0.0.4, written line by line.
// https://prometheus.io/docs/instrumenting/exposition_formats/

/** Builds one exposition, metric family by family. */
export class Exposition {
  #text = "";

  /** Starts a family: its `# HELP` and `# TYPE` lines. */
  family(
    name: string,
    type: "counter" | "gauge" | "histogram",
    help: string,
  ): this {
    this.#text += `# HELP ${name} ${
      escapeHelp(help)
    }\n# TYPE ${name} ${type}\n`;
    return this;
  }

  /** One sample of the current family. */
  sample(name: string, value: number, labels?: Record<string, string>): this {
    this.#text += `${name}${formatLabels(labels)} ${formatValue(value)}\n`;
    return this;
  }

  /** The text so far. */
  toString(): string {
    return this.#text;
  }
}

function formatLabels(labels: Record<string, string> | undefined): string {
  if (labels === undefined) return "";
  const parts = Object.entries(labels).map(([key, value]) =>
    `${key}="${escapeLabel(value)}"`
  );
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function formatValue(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return Number.isNaN(value) ? "NaN" : String(value);
}

function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function escapeLabel(text: string): string {
  return escapeHelp(text).replaceAll('"', '\\"');
}
