// Finds Bun (issue 19 §1), for bench/run.ts and bench/ws_fanout.ts: Bun is
// a baseline, not a dependency, so a machine without it skips its rows.

/**
 * The Bun executable: $BUN, `bun` on the PATH, or the npm package's binary
 * (`npm install -g bun`, whose link may be missing from the PATH);
 * undefined when none runs.
 */
export async function findBun(): Promise<string | undefined> {
  for (const candidate of [Deno.env.get("BUN"), "bun"]) {
    if (candidate && await runs(candidate)) return candidate;
  }
  try {
    const out = await new Deno.Command("npm", {
      args: ["root", "-g"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const root = new TextDecoder().decode(out.stdout).trim();
    const binary = `${root}/bun/bin/bun.exe`;
    if (root && await runs(binary)) return binary;
  } catch {
    // no npm
  }
  return undefined;
}

async function runs(command: string): Promise<boolean> {
  try {
    const out = await new Deno.Command(command, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}
