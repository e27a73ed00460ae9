// common.mjs - helpers shared by the driver scripts (run by tests/integration/test_drivers.py).
// A script checks every result with check(), prints one JSON line with report() on success and
// exits 1 through fail() on the first wrong result or error (message and SQLSTATE on stderr).

export class CheckFailed extends Error {}

export function check(cond, message) {
  if (!cond) throw new CheckFailed(message);
}

export function fail(e) {
  if (e instanceof CheckFailed) {
    console.error("WRONG RESULT: " + e.message);
  } else if (e && typeof e === "object") {
    console.error("ERROR: " + (e.stack || e.message) + (e.code ? `\nSQLSTATE/code: ${e.code}` : ""));
  } else {
    console.error("ERROR: " + e);
  }
  process.exit(1);
}

export function report(summary) {
  console.log(JSON.stringify(summary));
}

export function sameJSON(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}
