// Issue 19 §4: the idle rows also read a server's RSS after a forced,
// memory-reducing garbage collection, so that what V8's young generation
// grew to during the accept burst (tens of MB, a one-off that a million
// sessions would amortize) is shown apart from what the sessions hold. The
// bench starts Deno servers with --expose-gc and sends SIGUSR2 once the
// connections are idle; this runs the collection. A "last-resort" major
// GC also shrinks the young generation and gives its pages back.
// Imported for its side effect by the servers of the idle rows.

// deno-lint-ignore no-explicit-any
const gc = (globalThis as any).gc as ((options?: object) => void) | undefined;

if (gc !== undefined) {
  Deno.addSignalListener("SIGUSR2", () => {
    gc({ type: "major", execution: "sync", flavor: "last-resort" });
  });
}
