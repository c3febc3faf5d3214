// Builds the Go hub baseline (bench/servers/go_hub/main.go, standard
// library only) with `go build`, caching the binary in the temp directory
// under a hash of its source. The Go build cache goes to a throwaway temp
// directory, so nothing outside the temp directory is touched.

/**
 * Compiles bench/servers/go_hub/main.go, or reuses an earlier build of the
 * same source.
 *
 * @param benchDir The bench/ directory, with a trailing slash.
 * @returns The binary's path, or an error message when `go` is missing or
 * the build failed.
 */
export async function buildGoHub(
  benchDir: string,
): Promise<{ binary: string } | { error: string }> {
  const dir = `${benchDir}servers/go_hub`;
  const source = await Deno.readFile(`${dir}/main.go`);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", source));
  const hash = Array.from(
    digest.slice(0, 8),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  const binary = `${tmp}/microsocket-bench-go-hub-${hash}`;
  try {
    await Deno.stat(binary);
    return { binary };
  } catch {
    // not built yet
  }
  const cache = await Deno.makeTempDir({
    prefix: "microsocket-bench-gocache-",
  });
  try {
    const partial = `${binary}.${Deno.pid}`;
    const out = await new Deno.Command("go", {
      args: ["build", "-o", partial, "main.go"],
      cwd: dir,
      // No module download can happen: the hub imports the standard library
      // only, and GOFLAGS from the caller's environment is ignored.
      env: { GOCACHE: cache, GOFLAGS: "", GOPROXY: "off" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      return {
        error: `go build failed: ${
          new TextDecoder().decode(out.stderr).trim().slice(-300)
        }`,
      };
    }
    await Deno.rename(partial, binary);
    return { binary };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { error: "go is not installed" };
    }
    return { error: `go build failed: ${(error as Error).message}` };
  } finally {
    await Deno.remove(cache, { recursive: true }).catch(() => {});
  }
}
