// The route keys of the built-in codecs' messages: each codec hands its own
// to `Codec.routeKey`, and the router's `defaultRouteKey` (for sessions
// whose codec has none) tries them all.

/** A text line's first word (the whole line when it has no space). */
export function firstWord(line: string): string {
  const space = line.indexOf(" ");
  return space < 0 ? line : line.slice(0, space);
}

/** A JSON object's string `type` field. */
export function typeField(message: unknown): string | undefined {
  if (typeof message !== "object" || message === null) return undefined;
  const type = (message as Record<string, unknown>).type;
  return typeof type === "string" ? type : undefined;
}

/** A microSocket map's `module.method`, else its `action`. */
export function moduleMethodOrAction(message: unknown): string | undefined {
  if (typeof message !== "object" || message === null) return undefined;
  const fields = message as Record<string, unknown>;
  const module = fields.module;
  const method = fields.method;
  if (typeof module === "string" && typeof method === "string") {
    return module + "." + method;
  }
  const action = fields.action;
  return typeof action === "string" ? action : undefined;
}
