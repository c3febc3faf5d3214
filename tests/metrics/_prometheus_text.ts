// A tiny parser of the Prometheus text format 0.0.4 for the metrics tests:
// it checks the format as it goes (HELP and TYPE before a family's samples,
// legal names, counters ending in _total) and returns the samples.
import assert from "node:assert/strict";

export const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const SAMPLE = /^([^\s{]+)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([^=,]+)="((?:[^"\\]|\\.)*)"/g;

export interface Family {
  help: string;
  type: string;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

/** Parses and checks an exposition; see the file comment. */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  let current: [string, Family] | undefined;
  assert.ok(text.endsWith("\n"), "the exposition ends with a newline");
  for (const line of text.slice(0, -1).split("\n")) {
    const help = line.match(/^# HELP (\S+) (.+)$/);
    if (help !== null) {
      const [, name, text] = help;
      assert.match(name!, METRIC_NAME);
      assert.ok(!families.has(name!), `${name} is declared once`);
      current = [name!, { help: text!, type: "", samples: [] }];
      families.set(name!, current[1]);
      continue;
    }
    const type = line.match(/^# TYPE (\S+) (counter|gauge|histogram)$/);
    if (type !== null) {
      assert.equal(type[1], current?.[0], `TYPE follows HELP: ${line}`);
      current![1].type = type[2]!;
      if (type[2] === "counter") assert.match(type[1]!, /_total$/);
      continue;
    }
    const sample = line.match(SAMPLE);
    assert.ok(sample !== null, `a sample line: ${JSON.stringify(line)}`);
    const [, name, labelText, value] = sample;
    assert.match(name!, METRIC_NAME);
    assert.ok(current !== undefined && current[1].type !== "");
    const [family, entry] = current;
    if (entry.type === "histogram") {
      assert.match(name!, new RegExp(`^${family}_(bucket|sum|count)$`));
    } else {
      assert.equal(name, family);
    }
    const labels: Record<string, string> = {};
    for (const [, key, text] of (labelText ?? "").matchAll(LABEL)) {
      assert.match(key!, LABEL_NAME);
      labels[key!] = text!;
    }
    const number = value === "+Inf" ? Infinity : Number(value);
    assert.ok(!Number.isNaN(number), `a number: ${value}`);
    entry.samples.push({ name: name!, labels, value: number });
  }
  return families;
}

/** The value of the sample `name` whose labels include `labels`. */
export function valueOf(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const family of families.values()) {
    for (const sample of family.samples) {
      if (
        sample.name === name &&
        Object.entries(labels).every(([k, v]) => sample.labels[k] === v)
      ) return sample.value;
    }
  }
  return undefined;
}
