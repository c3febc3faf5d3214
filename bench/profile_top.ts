// Prints the top entries of a V8 CPU profile (from `deno run --cpu-prof`):
// self time and total (inclusive) time per function, idle time excluded.
//
//   deno task bench --servers=microsocket --workloads=echo --repeat=1 --no-write \
//     --server-flags="--cpu-prof --cpu-prof-dir=/tmp/prof"
//   deno run --allow-read bench/profile_top.ts /tmp/prof/CPU.*.cpuprofile [count]

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One row of the report. */
export interface ProfileEntry {
  name: string;
  selfMs: number;
  totalMs: number;
}

/**
 * Sums self and inclusive time per function (name + file + line).
 *
 * @param profile A parsed .cpuprofile.
 * @returns Entries and the busy (non-idle) time in ms.
 */
export function summarize(
  profile: Profile,
): { entries: ProfileEntry[]; busyMs: number } {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const keyOf = (node: ProfileNode): string => {
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^file:\/\/.*?\/(src|bench|ext):?/, "$1").replace(
      /^.*\//,
      "",
    );
    return `${functionName || "(anonymous)"} ${file}${
      url ? `:${lineNumber + 1}` : ""
    }`;
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let busy = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    let node = byId.get(profile.samples[i]!);
    if (!node || node.callFrame.functionName === "(idle)") continue;
    busy += delta;
    const key = keyOf(node);
    self.set(key, (self.get(key) ?? 0) + delta);
    const seen = new Set<string>();
    while (node) {
      const k = keyOf(node);
      if (!seen.has(k) && node.callFrame.functionName !== "(root)") {
        seen.add(k);
        total.set(k, (total.get(k) ?? 0) + delta);
      }
      const up = parent.get(node.id);
      node = up === undefined ? undefined : byId.get(up);
    }
  }
  const entries = [...total.keys()].map((name) => ({
    name,
    selfMs: self.get(name) ?? 0,
    totalMs: total.get(name) ?? 0,
  }));
  return { entries, busyMs: busy };
}

if (import.meta.main) {
  const [path, countArg] = Deno.args;
  if (!path) {
    console.error("usage: profile_top.ts FILE.cpuprofile [count]");
    Deno.exit(2);
  }
  const count = Number(countArg ?? 20);
  const { entries, busyMs } = summarize(
    JSON.parse(await Deno.readTextFile(path)),
  );
  const pct = (ms: number): string => `${((ms / busyMs) * 100).toFixed(1)}%`;
  console.log(`busy ${busyMs.toFixed(0)} ms (idle excluded)\n`);
  console.log("self time:");
  for (
    const e of [...entries].sort((a, b) => b.selfMs - a.selfMs).slice(0, count)
  ) {
    console.log(`  ${pct(e.selfMs).padStart(6)}  ${e.name}`);
  }
  console.log("\ntotal time:");
  for (
    const e of [...entries].sort((a, b) => b.totalMs - a.totalMs).slice(
      0,
      count,
    )
  ) {
    console.log(`  ${pct(e.totalMs).padStart(6)}  ${e.name}`);
  }
}
