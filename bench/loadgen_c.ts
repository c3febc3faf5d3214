// Builds the C load generator (bench/loadgen.c, with a thread for the
// flood's sender) with the system C compiler,
// caching the binary in the temp directory under a hash of its source.

/**
 * Compiles bench/loadgen.c, or reuses an earlier build of the same source.
 *
 * @param benchDir The bench/ directory, with a trailing slash.
 * @returns The binary's path, or null when no C compiler could build it.
 */
export async function compileLoadgen(benchDir: string): Promise<string | null> {
  const source = await Deno.readFile(`${benchDir}loadgen.c`);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", source));
  const hash = Array.from(
    digest.slice(0, 8),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  const binary = `${tmp}/microsocket-bench-loadgen-${hash}`;
  try {
    await Deno.stat(binary);
    return binary;
  } catch {
    // not built yet
  }
  for (const compiler of [Deno.env.get("CC"), "cc", "gcc", "clang"]) {
    if (!compiler) continue;
    try {
      const partial = `${binary}.${Deno.pid}`;
      const out = await new Deno.Command(compiler, {
        args: ["-O2", "-pthread", "-o", partial, `${benchDir}loadgen.c`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!out.success) {
        console.error(new TextDecoder().decode(out.stderr));
        continue;
      }
      await Deno.rename(partial, binary);
      return binary;
    } catch {
      // compiler not installed: try the next one
    }
  }
  return null;
}
