// Issue 19 §4: what one idle session holds, from two heap snapshots of the
// same server at two sizes (bench/idle_probe.ts --snapshot=DIR writes them).
// Diffing the two cancels out everything that doesn't grow with the number
// of sessions; dividing by the difference gives bytes per session, by kind
// of object (V8's constructor or closure name). With --retained, it also
// builds the dominator tree of the larger snapshot and gives, for the
// session's parts, the average retained size (what would be freed with it).
//
//   deno run -A bench/idle_heap.ts SMALL.heapsnapshot LARGE.heapsnapshot
//       DELTA_SESSIONS [--top=40] [--retained] [--by-retainer]
//
// --by-retainer splits each kind by what holds it (the first strong edge
// to it: "← holder.field").

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
    node_count: number;
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

interface Group {
  count: number;
  size: number;
}

const PARTS = [
  "Session",
  "Lifecycle",
  "Writer",
  "Reader",
  "Inbound",
  "Liveness",
  "LivenessTracker",
  "Flow",
  "OutboundQueue",
  "TcpConn",
  "Connection",
  "WebSocketConnection",
  "WebSocketDecoder",
  "FrameParser",
  "UpgradeRequest",
];

async function load(path: string): Promise<Snapshot> {
  return JSON.parse(await Deno.readTextFile(path));
}

function key(s: Snapshot, i: number, nodeFields: number): string {
  const { nodes, strings } = s;
  const types = s.snapshot.meta.node_types[0];
  const type = types[nodes[i * nodeFields]!]!;
  const name = strings[nodes[i * nodeFields + 1]!]!;
  switch (type) {
    case "object":
    case "closure":
      return `${type} ${name}`;
    case "string":
    case "concatenated string":
    case "sliced string":
      return "(string)";
    case "number":
      return "(heap number)";
    default:
      return `(${type}) ${name.length > 40 ? name.slice(0, 40) + "…" : name}`;
  }
}

// For each node, one retainer: "retainer key .edge" (the first strong edge
// found to it), so that objects of one kind are told apart by what holds
// them (a generator's registers from an array's elements, say).
function retainers(s: Snapshot): string[] {
  const meta = s.snapshot.meta;
  const nodeFields = meta.node_fields.length;
  const edgeFields = meta.edge_fields.length;
  const edgeCountAt = meta.node_fields.indexOf("edge_count");
  const edgeTypes = meta.edge_types[0];
  const n = s.nodes.length / nodeFields;
  const out = new Array<string>(n).fill("");
  for (let i = 0, e = 0; i < n; i++) {
    const count = s.nodes[i * nodeFields + edgeCountAt]!;
    const from = key(s, i, nodeFields);
    for (let j = 0; j < count; j++, e++) {
      const type = edgeTypes[s.edges[e * edgeFields]!]!;
      if (type === "weak" || type === "shortcut") continue;
      const to = s.edges[e * edgeFields + 2]! / nodeFields;
      if (out[to] !== "") continue;
      const nameOrIndex = s.edges[e * edgeFields + 1]!;
      const name = type === "element" || type === "hidden"
        ? `[${type === "hidden" ? "hidden" : "i"}]`
        : s.strings[nameOrIndex]!;
      out[to] = ` ← ${from}.${name}`;
    }
  }
  return out;
}

function groups(s: Snapshot, byRetainer: boolean): Map<string, Group> {
  const nodeFields = s.snapshot.meta.node_fields.length;
  const selfSize = s.snapshot.meta.node_fields.indexOf("self_size");
  const n = s.nodes.length / nodeFields;
  const out = new Map<string, Group>();
  const held = byRetainer ? retainers(s) : undefined;
  for (let i = 0; i < n; i++) {
    const k = key(s, i, nodeFields) + (held?.[i] ?? "");
    const g = out.get(k) ?? { count: 0, size: 0 };
    g.count++;
    g.size += s.nodes[i * nodeFields + selfSize]!;
    out.set(k, g);
  }
  return out;
}

// Dominators by the iterative algorithm of Cooper, Harvey and Kennedy, on
// strong edges only (weak edges don't keep anything alive).
function retainedSizes(s: Snapshot): Float64Array {
  const meta = s.snapshot.meta;
  const nodeFields = meta.node_fields.length;
  const edgeFields = meta.edge_fields.length;
  const edgeCountAt = meta.node_fields.indexOf("edge_count");
  const selfAt = meta.node_fields.indexOf("self_size");
  const toAt = meta.edge_fields.indexOf("to_node");
  const edgeTypes = meta.edge_types[0];
  const weak = edgeTypes.indexOf("weak");
  const shortcut = edgeTypes.indexOf("shortcut");
  const n = s.nodes.length / nodeFields;
  const firstEdge = new Uint32Array(n + 1);
  for (let i = 0, e = 0; i < n; i++) {
    firstEdge[i] = e;
    e += s.nodes[i * nodeFields + edgeCountAt]!;
    firstEdge[i + 1] = e;
  }
  const strong = (e: number): boolean => {
    const t = s.edges[e * edgeFields]!;
    return t !== weak && t !== shortcut;
  };
  // Post-order by an explicit-stack DFS from the root (node 0).
  const order = new Int32Array(n).fill(-1); // post-order number
  const byOrder = new Int32Array(n);
  const stackNode = new Int32Array(n);
  const stackEdge = new Uint32Array(n);
  const visited = new Uint8Array(n);
  let sp = 0, post = 0;
  stackNode[0] = 0;
  stackEdge[0] = firstEdge[0]!;
  visited[0] = 1;
  while (sp >= 0) {
    const v = stackNode[sp]!;
    const e = stackEdge[sp]!;
    if (e < firstEdge[v + 1]!) {
      stackEdge[sp] = e + 1;
      if (!strong(e)) continue;
      const w = s.edges[e * edgeFields + toAt]! / nodeFields;
      if (visited[w]) continue;
      visited[w] = 1;
      sp++;
      stackNode[sp] = w;
      stackEdge[sp] = firstEdge[w]!;
    } else {
      order[v] = post;
      byOrder[post++] = v;
      sp--;
    }
  }
  // Predecessors (reachable only).
  const predCount = new Uint32Array(n + 1);
  for (let v = 0; v < n; v++) {
    if (!visited[v]) continue;
    for (let e = firstEdge[v]!; e < firstEdge[v + 1]!; e++) {
      if (!strong(e)) continue;
      predCount[s.edges[e * edgeFields + toAt]! / nodeFields]!++;
    }
  }
  const predStart = new Uint32Array(n + 1);
  for (let v = 0; v < n; v++) predStart[v + 1] = predStart[v]! + predCount[v]!;
  const preds = new Int32Array(predStart[n]!);
  const fill = predStart.slice(0, n);
  for (let v = 0; v < n; v++) {
    if (!visited[v]) continue;
    for (let e = firstEdge[v]!; e < firstEdge[v + 1]!; e++) {
      if (!strong(e)) continue;
      const w = s.edges[e * edgeFields + toAt]! / nodeFields;
      preds[fill[w]!++] = v;
    }
  }
  const idom = new Int32Array(n).fill(-1);
  idom[0] = 0;
  const intersect = (a: number, b: number): number => {
    while (a !== b) {
      while (order[a]! < order[b]!) a = idom[a]!;
      while (order[b]! < order[a]!) b = idom[b]!;
    }
    return a;
  };
  let changed = true;
  while (changed) {
    changed = false;
    for (let k = post - 2; k >= 0; k--) {
      const v = byOrder[k]!;
      let d = -1;
      for (let p = predStart[v]!; p < predStart[v + 1]!; p++) {
        const u = preds[p]!;
        if (idom[u] === -1) continue;
        d = d === -1 ? u : intersect(u, d);
      }
      if (d !== idom[v]) {
        idom[v] = d;
        changed = true;
      }
    }
  }
  const retained = new Float64Array(n);
  for (let v = 0; v < n; v++) retained[v] = s.nodes[v * nodeFields + selfAt]!;
  for (let k = 0; k < post - 1; k++) {
    const v = byOrder[k]!;
    if (v !== 0) retained[idom[v]!] = retained[idom[v]!]! + retained[v]!;
  }
  return retained;
}

const args = Deno.args.filter((a) => !a.startsWith("--"));
const top = Number(
  Deno.args.find((a) => a.startsWith("--top="))?.slice(6) ?? 40,
);
const [smallPath, largePath, deltaText] = args;
if (smallPath === undefined || largePath === undefined || !deltaText) {
  console.error(
    "usage: idle_heap.ts SMALL.heapsnapshot LARGE.heapsnapshot DELTA [--top=N] [--retained]",
  );
  Deno.exit(2);
}
const delta = Number(deltaText);
const byRetainer = Deno.args.includes("--by-retainer");
const small = groups(await load(smallPath), byRetainer);
const largeSnapshot = await load(largePath);
const large = groups(largeSnapshot, byRetainer);
const rows: [string, number, number][] = [];
let total = 0;
for (const [k, g] of large) {
  const s = small.get(k) ?? { count: 0, size: 0 };
  const bytes = (g.size - s.size) / delta;
  const count = (g.count - s.count) / delta;
  total += bytes;
  rows.push([k, count, bytes]);
}
rows.sort((a, b) => b[2] - a[2]);
console.log(`| object (V8 name) | per session | bytes per session |`);
console.log(`|---|---:|---:|`);
for (const [k, count, bytes] of rows.slice(0, top)) {
  if (Math.abs(bytes) < 1) break;
  console.log(`| ${k} | ${count.toFixed(2)} | ${bytes.toFixed(0)} |`);
}
console.log(`| **all** | | **${total.toFixed(0)}** |`);

if (Deno.args.includes("--retained")) {
  const s = largeSnapshot;
  const retained = retainedSizes(s);
  const nodeFields = s.snapshot.meta.node_fields.length;
  const selfAt = s.snapshot.meta.node_fields.indexOf("self_size");
  const n = s.nodes.length / nodeFields;
  const byPart = new Map<
    string,
    { count: number; self: number; kept: number }
  >();
  for (let i = 0; i < n; i++) {
    const k = key(s, i, nodeFields);
    if (!k.startsWith("object ")) continue;
    const name = k.slice(7);
    if (!PARTS.includes(name)) continue;
    const g = byPart.get(name) ?? { count: 0, self: 0, kept: 0 };
    g.count++;
    g.self += s.nodes[i * nodeFields + selfAt]!;
    g.kept += retained[i]!;
    byPart.set(name, g);
  }
  console.log();
  console.log(`| part | instances | self bytes (avg) | retained bytes (avg) |`);
  console.log(`|---|---:|---:|---:|`);
  for (const name of PARTS) {
    const g = byPart.get(name);
    if (g === undefined) continue;
    console.log(
      `| ${name} | ${g.count} | ${(g.self / g.count).toFixed(0)} | ${
        (g.kept / g.count).toFixed(0)
      } |`,
    );
  }
}
