// Package-internal: lets a SessionManager learn the moment a session starts
// closing (not when it has finished flushing), so broadcasts stop targeting it
// at once. Kept out of the public API on purpose.

type Listener = (session: object) => void;

const listeners = new WeakMap<object, Listener[]>();

/** Registers `listener` to run once when `session` starts closing. */
export function onClosing(session: object, listener: Listener): void {
  const list = listeners.get(session);
  if (list === undefined) listeners.set(session, [listener]);
  else list.push(listener);
}

/** Runs and forgets the listeners of `session`. */
export function runClosing(session: object): void {
  const list = listeners.get(session);
  if (list === undefined) return;
  listeners.delete(session);
  for (const listener of list) listener(session);
}
