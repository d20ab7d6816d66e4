// A small strict JSON parser (RFC 8259) for the plugin configuration; AssemblyScript has none.
// Input and output strings are byte strings (abi/bytes.ts): `\u` escapes become UTF-8 bytes.
// Duplicate object keys are an error: a configuration must say one thing per key.

export enum JsonKind { Null, Bool, Number, String, Array, Object }

export class JsonValue {
  kind: JsonKind = JsonKind.Null;
  bool: bool = false;
  number: f64 = 0;
  /** For numbers: the literal as written (used in error messages). */
  text: string = "";
  /** Array items, or object values in key order. */
  items: JsonValue[] = [];
  /** Object keys, parallel to `items`. */
  keys: string[] = [];

  describe(): string {
    switch (this.kind) {
      case JsonKind.Null: return "null";
      case JsonKind.Bool: return this.bool ? "true" : "false";
      case JsonKind.Number: return this.text;
      case JsonKind.String: return quote(this.text);
      case JsonKind.Array: return "an array";
    }
    return "an object";
  }
}

export class JsonResult {
  constructor(public value: JsonValue | null, public error: string) {}
}

/** Quotes a byte string for a one-line message: control and non-ASCII bytes as \xNN. */
export function quote(s: string): string {
  let out = "\"";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22 || c == 0x5C) out += "\\" + String.fromCharCode(c);
    else if (c < 0x20 || c >= 0x7F) out += "\\x" + (c < 0x10 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

const MAX_DEPTH = 32;

class Parser {
  pos: i32 = 0;
  error: string = "";

  constructor(readonly src: string) {}

  fail(what: string): JsonValue | null {
    if (this.error.length == 0) this.error = what + " at byte " + this.pos.toString();
    return null;
  }

  peek(): i32 {
    return this.pos < this.src.length ? this.src.charCodeAt(this.pos) : -1;
  }

  skipSpace(): void {
    while (this.pos < this.src.length) {
      const c = this.src.charCodeAt(this.pos);
      if (c != 0x20 && c != 0x09 && c != 0x0A && c != 0x0D) return;
      this.pos++;
    }
  }

  literal(word: string): bool {
    if (this.src.substr(this.pos, word.length) != word) return false;
    this.pos += word.length;
    return true;
  }

  value(depth: i32): JsonValue | null {
    if (depth > MAX_DEPTH) return this.fail("nesting deeper than " + MAX_DEPTH.toString());
    this.skipSpace();
    const c = this.peek();
    const v = new JsonValue();
    if (c == 0x7B) return this.object(depth);
    if (c == 0x5B) return this.array(depth);
    if (c == 0x22) {
      const s = this.string();
      if (s === null) return null;
      v.kind = JsonKind.String;
      v.text = s;
      return v;
    }
    if (c == 0x2D || (c >= 0x30 && c <= 0x39)) return this.number();
    if (this.literal("true")) { v.kind = JsonKind.Bool; v.bool = true; return v; }
    if (this.literal("false")) { v.kind = JsonKind.Bool; return v; }
    if (this.literal("null")) return v;
    return this.fail(c < 0 ? "unexpected end of input" : "unexpected character " + quote(String.fromCharCode(c)));
  }

  object(depth: i32): JsonValue | null {
    const v = new JsonValue();
    v.kind = JsonKind.Object;
    this.pos++; // {
    this.skipSpace();
    if (this.peek() == 0x7D) { this.pos++; return v; }
    while (true) {
      this.skipSpace();
      if (this.peek() != 0x22) return this.fail("expected a quoted key");
      const key = this.string();
      if (key === null) return null;
      if (v.keys.includes(key)) return this.fail("duplicate key " + quote(key));
      this.skipSpace();
      if (this.peek() != 0x3A) return this.fail("expected ':' after key " + quote(key));
      this.pos++;
      const item = this.value(depth + 1);
      if (item === null) return null;
      v.keys.push(key);
      v.items.push(item);
      this.skipSpace();
      const c = this.peek();
      this.pos++;
      if (c == 0x7D) return v;
      if (c != 0x2C) { this.pos--; return this.fail("expected ',' or '}'"); }
    }
  }

  array(depth: i32): JsonValue | null {
    const v = new JsonValue();
    v.kind = JsonKind.Array;
    this.pos++; // [
    this.skipSpace();
    if (this.peek() == 0x5D) { this.pos++; return v; }
    while (true) {
      const item = this.value(depth + 1);
      if (item === null) return null;
      v.items.push(item);
      this.skipSpace();
      const c = this.peek();
      this.pos++;
      if (c == 0x5D) return v;
      if (c != 0x2C) { this.pos--; return this.fail("expected ',' or ']'"); }
    }
  }

  number(): JsonValue | null {
    const start = this.pos;
    if (this.peek() == 0x2D) this.pos++;
    if (this.peek() == 0x30) this.pos++;
    else if (!this.digits()) return this.fail("invalid number");
    if (this.peek() == 0x2E) { this.pos++; if (!this.digits()) return this.fail("invalid number"); }
    const e = this.peek();
    if (e == 0x65 || e == 0x45) {
      this.pos++;
      const sign = this.peek();
      if (sign == 0x2B || sign == 0x2D) this.pos++;
      if (!this.digits()) return this.fail("invalid number");
    }
    const v = new JsonValue();
    v.kind = JsonKind.Number;
    v.text = this.src.substring(start, this.pos);
    v.number = parseFloat(v.text);
    return v;
  }

  digits(): bool {
    const start = this.pos;
    while (this.pos < this.src.length) {
      const c = this.src.charCodeAt(this.pos);
      if (c < 0x30 || c > 0x39) break;
      this.pos++;
    }
    return this.pos > start;
  }

  hex4(): i32 {
    if (this.pos + 4 > this.src.length) return -1;
    let n = 0;
    for (let i = 0; i < 4; i++) {
      const c = this.src.charCodeAt(this.pos++);
      let d: i32;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
      else return -1;
      n = (n << 4) | d;
    }
    return n;
  }

  string(): string | null {
    this.pos++; // opening quote
    const parts = new Array<string>();
    let run = this.pos;
    while (true) {
      if (this.pos >= this.src.length) { this.fail("unterminated string"); return null; }
      const c = this.src.charCodeAt(this.pos);
      if (c == 0x22) {
        parts.push(this.src.substring(run, this.pos));
        this.pos++;
        return parts.join("");
      }
      if (c < 0x20) { this.fail("control character in string"); return null; }
      if (c != 0x5C) { this.pos++; continue; }
      parts.push(this.src.substring(run, this.pos));
      this.pos++;
      const e = this.peek();
      this.pos++;
      if (e == 0x22) parts.push("\"");
      else if (e == 0x5C) parts.push("\\");
      else if (e == 0x2F) parts.push("/");
      else if (e == 0x62) parts.push("\b");
      else if (e == 0x66) parts.push("\f");
      else if (e == 0x6E) parts.push("\n");
      else if (e == 0x72) parts.push("\r");
      else if (e == 0x74) parts.push("\t");
      else if (e == 0x75) {
        let cp = this.hex4();
        if (cp < 0) { this.fail("invalid \\u escape"); return null; }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (!this.literal("\\u")) { this.fail("unpaired surrogate in \\u escape"); return null; }
          const lo = this.hex4();
          if (lo < 0xDC00 || lo > 0xDFFF) { this.fail("unpaired surrogate in \\u escape"); return null; }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          this.fail("unpaired surrogate in \\u escape");
          return null;
        }
        parts.push(utf8Bytes(cp));
      } else { this.pos--; this.fail("invalid escape"); return null; }
      run = this.pos;
    }
  }
}

/** The UTF-8 encoding of one code point, as a byte string. */
function utf8Bytes(cp: i32): string {
  if (cp < 0x80) return String.fromCharCode(cp);
  if (cp < 0x800) return String.fromCharCodes([0xC0 | (cp >> 6), 0x80 | (cp & 0x3F)]);
  if (cp < 0x10000) return String.fromCharCodes([0xE0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3F), 0x80 | (cp & 0x3F)]);
  return String.fromCharCodes([0xF0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3F), 0x80 | ((cp >> 6) & 0x3F), 0x80 | (cp & 0x3F)]);
}

export function parseJson(src: string): JsonResult {
  const p = new Parser(src);
  const v = p.value(0);
  if (v === null) return new JsonResult(null, p.error);
  p.skipSpace();
  if (p.pos < src.length) {
    p.fail("unexpected data after the value");
    return new JsonResult(null, p.error);
  }
  return new JsonResult(v, "");
}
