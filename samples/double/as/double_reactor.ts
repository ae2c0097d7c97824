// double (AssemblyScript reactor): the same function as double.ts, exported as run. The
// module's start-up (the runtime's and this file's top level) is exported as _initialize
// (asconfig.reactor.json: exportStart), so it runs once, at pre-initialization. Built with
// @assemblyscript/wasi-shim, so it imports only WASI preview1.

function isSpace(c: u8): bool {
  return c == 32 || c == 10 || c == 13 || c == 9;
}

function fail(): void {
  process.stderr.write("double: not an integer\n");
  process.exit(2);
}

export function run(): void {
  const buf = new ArrayBuffer(65536);
  let len = 0;
  while (len < buf.byteLength) {
    const n = process.stdin.read(buf, len);
    if (n <= 0) break;
    len += n;
  }
  const bytes = Uint8Array.wrap(buf, 0, len);
  let i = 0;
  while (i < len && isSpace(bytes[i])) i++;
  let neg = false;
  if (i < len && (bytes[i] == 45 || bytes[i] == 43)) {
    neg = bytes[i] == 45;
    i++;
  }
  let v: i64 = 0;
  let digits = 0;
  while (i < len && bytes[i] >= 48 && bytes[i] <= 57) {
    v = v * 10 + <i64>(bytes[i] - 48);
    digits++;
    i++;
  }
  while (i < len && isSpace(bytes[i])) i++;
  if (digits == 0 || i != len) {
    fail();
    return;
  }
  if (neg) v = -v;
  process.stdout.write((v * 2).toString());
}
