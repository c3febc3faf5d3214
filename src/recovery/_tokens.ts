// Package-internal: resume tokens (issue 17), for a server's own recovery
// and a cluster's: unguessable, compared in constant time.

/** 144 random bits, base64url (24 characters). */
export function newToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_");
}

// Compares in time independent of where the first difference is.
export function sameToken(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
