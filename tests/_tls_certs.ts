// Test helper: a throwaway CA and server certificate for 127.0.0.1 and
// localhost, made by openssl for one run (as tests/server/tls_test.ts does).
import assert from "node:assert/strict";

/** Runs openssl with `args`, failing the test with its stderr on error. */
async function openssl(args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command("openssl", {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
}

/**
 * A throwaway CA and a server certificate it signed for 127.0.0.1 and
 * localhost (rustls refuses a CA certificate as the server's own, so a lone
 * `req -x509` certificate won't do).
 */
export async function testCertificates(): Promise<
  { cert: string; key: string; ca: string }
> {
  const dir = await Deno.makeTempDir({ prefix: "microsocket_tls_" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
  try {
    await openssl([
      "req",
      "-x509",
      ...ec,
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=microsocket test CA",
      "-keyout",
      `${dir}/ca.key`,
      "-out",
      `${dir}/ca.pem`,
    ]);
    await openssl([
      "req",
      ...ec,
      "-nodes",
      "-subj",
      "/CN=localhost",
      "-keyout",
      `${dir}/key.pem`,
      "-out",
      `${dir}/csr.pem`,
    ]);
    await Deno.writeTextFile(
      `${dir}/ext.cnf`,
      "subjectAltName=IP:127.0.0.1,DNS:localhost\n" +
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
    await openssl([
      "x509",
      "-req",
      "-in",
      `${dir}/csr.pem`,
      "-days",
      "2",
      "-CA",
      `${dir}/ca.pem`,
      "-CAkey",
      `${dir}/ca.key`,
      "-set_serial",
      "1",
      "-extfile",
      `${dir}/ext.cnf`,
      "-out",
      `${dir}/cert.pem`,
    ]);
    return {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
      ca: await Deno.readTextFile(`${dir}/ca.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
