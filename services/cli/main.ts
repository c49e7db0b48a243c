/** The `lclstream` command. */
import { createProgram } from "./program.js";

/** An error as a user reads it, with a hint where the cause is usually elsewhere. */
function explain(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // A file named on the command line that is not there: its name and the reason, not Node's errno text.
  const file = error as NodeJS.ErrnoException;
  const reasons: Record<string, string> = {
    ENOENT: "no such file",
    EACCES: "permission denied",
    EISDIR: "is a directory, not a file",
    ENOTDIR: "a part of the path is not a directory",
  };
  if (file.path && file.code && reasons[file.code]) return `${file.path}: ${reasons[file.code]}`;
  // A TLS 1.3 server checks the client certificate after the client thinks the
  // handshake is done, so a refused certificate shows up as a reset connection.
  if (/ECONNRESET|alert|socket hang up|stream closed with error code/i.test(message)) {
    return (
      `${message}\n  the server closed the connection: is your certificate expired, revoked or from another CA? ` +
      "Check with `openssl x509 -in CERT_DIR/tls.crt -noout -dates -issuer`; renew with `lclstream renew` or enroll again."
    );
  }
  return message;
}

createProgram(process.argv)
  .then((program) => program.parseAsync(process.argv))
  .catch((error: unknown) => {
    console.error(`lclstream: ${explain(error)}`);
    // Now, whatever is still open (a producer's connection to the buffer): a
    // failed command must not linger at 0% CPU with its job still ACTIVE.
    process.exit(1);
  });
