// Value generators for the jobq fuzz test: a seeded PRNG, hostile and
// plausible values for every SQL type jobq's functions take, as the text
// that is sent as a bind parameter (or null for SQL NULL).
//
// Every path-like or URL-like value carries the marker FUZZMARK, so that
// after the run a search for files named after it shows whether any value
// ever steered a path.  No value carries FUZZSECRET: that marker is
// reserved for the secrets the run plants (headers, tokens), which must
// never reach the server log.

export const MARK = 'FUZZMARK';

// sfc32, seeded through splitmix32: small, fast, deterministic
export function makeRng(seed) {
  let s = seed >>> 0;
  const split = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split(), b = split(), c = split(), d = split();
  const next = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  const rng = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    chance: (p) => next() < p,
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    hex: (n) => {
      let out = '';
      for (let i = 0; i < n; i++) out += '0123456789abcdef'[Math.floor(next() * 16)];
      return out;
    },
    uuid: () => {
      const h = rng.hex(32);
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    },
  };
  return rng;
}

// One element of a PostgreSQL array literal (a string or null).
export function arrayElement(e) {
  return e === null ? 'NULL' : '"' + String(e).replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

// A PostgreSQL array literal of the given elements (strings or null).
export function arrayLiteral(elems, lowerBound) {
  const body = elems.map(arrayElement).join(',');
  const bounds = lowerBound !== undefined && elems.length > 0
    ? `[${lowerBound}:${lowerBound + elems.length - 1}]=` : '';
  return `${bounds}{${body}}`;
}

const deepArray = (n) => '['.repeat(n) + ']'.repeat(n);
const deepObject = (n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);

// Strings no function should choke on, whatever the argument means.
export function hostileStrings() {
  const big = 'x'.repeat(100_000);
  return [
    '', ' ', '\t', 'default', 'a', 'x'.repeat(200), 'x'.repeat(201), 'é'.repeat(100), 'é'.repeat(101),
    big, '😀'.repeat(30_000),
    "'", "''", '"', '\\', "'; DROP TABLE jobq.jobs; --", "$$; SELECT pg_sleep(100); $$", "%s%s%s%n%x",
    'Robert\'); DROP TABLE students;--', '\u202eevil\u202c', 'مرحبا بالعالم', 'עברית', '😀🎉👩‍👩‍👧‍👦',
    'e\u0301'.repeat(1000), 'Z̷̢̛̺̲͚͕͉̩̪̈́̾̿͗͊̈́͛̕a̸̧̺͙͖͇̮̺͆̌͂l̴̢̙̪̼̄̈́̐g̶̨̗̻̦̎ơ̵̖̼̤', '\u200b\u200d\ufeff', '\u0001\u0002\u001b[31mred',
    'line1\r\nline2', '\r\nX-Injected: yes', '\x7f', 'tab\there',
    `../../${MARK}/etc/passwd`, `..\\..\\${MARK}\\boot.ini`, `%2e%2e%2f${MARK}`, `/${MARK}/abs`,
    `./${MARK}`, `${MARK}/../../..`, `....//....//${MARK}`,
    `file:///etc/passwd#${MARK}`, `file:///tmp/${MARK}`, `gopher://127.0.0.1:70/_${MARK}`,
    `http://127.0.0.1:9/${MARK}`, `https://[::1]:9/${MARK}`, `http://user:pass@127.0.0.1:9/${MARK}`,
    `http://127.0.0.1:9/${MARK}\r\nX-Evil: 1`, `javascript:alert('${MARK}')`, `ftp://127.0.0.1:9/${MARK}`,
    'http://', 'https:///', 'http://127.0.0.1:9', `dict://127.0.0.1:9/${MARK}`,
    'jobq:0:1:deadbeefdeadbeef', 'jobq:', 'backend:1', 'JOBQ:0:1:x',
    '00000000-0000-0000-0000-000000000000', 'null', 'NULL', 'true', '{}', '[]', '0', '-1',
    '0123456789abcdef0123456789abcdef', '0123456789ABCDEF0123456789ABCDEF', '00000000000000000000000000000000',
    '00-0123456789abcdef0123456789abcdef-0123456789abcdef-01', 'g'.repeat(32),
    'HandlerError', 'ValidationError', 'Cancelled', 'TooManyRequests',
  ];
}

// JSON texts (valid, malformed, absurd); cast to jsonb by the call itself.
export function hostileJson() {
  return [
    '{}', '[]', 'null', '0', '"s"', 'true', '{"a": 1}', '[1, 2, 3]', '{"a": null}',
    deepArray(1000), deepObject(1000), deepArray(10_000), deepObject(10_000), deepArray(100_000),
    JSON.stringify({ s: 'x'.repeat(1_100_000) }), JSON.stringify({ s: 'x'.repeat(900_000) }),
    JSON.stringify(Array.from({ length: 20_000 }, (_, i) => ({ i }))),
    JSON.stringify(Object.fromEntries(Array.from({ length: 5000 }, (_, i) => ['k' + i, i]))),
    '{', '{"a":}', '[1,]', 'nul', '"\\ud800"', '"\\u0000"', '{"a":1}{"b":2}', "{'a':1}", '', ' ', 'NaN',
    '1e400', '-1e400', '1e-400', '1e1000000', '{"sub": "x", "n": -1e1000000}', '-0', '123456789012345678901234567890', '{"a": 1, "a": 2}',
    '"\\ud83d\\ude00"', JSON.stringify({ k: '\u0001\r\n"\\' }), JSON.stringify({ [`../${MARK}`]: 'v' }),
    '{"failure_rate": 1e400}', '{"latency_ms": -1e400}', '{"fail_status": 1e400}', '{"failure_rate": 2}',
    '{"latency_ms": 1e300}', '{"fail_status": 200}', '{"healthy": "yes"}', '{"output": {"x": 1}}',
    '{"failure_rate": 0.5, "latency_ms": 1, "fail_status": 503, "healthy": true}', '{"nope": 1}',
    '{"X-Evil": "a\\r\\nB: c"}', '{"Bad Name": "x"}', '{"X": 1}', '{"": "x"}', '{"X": "' + 'v'.repeat(10000) + '"}',
    '{"sub": "aaaaaaaa-0000-4000-8000-000000000001"}', '{"sub": 1}', '{"sub": null}', '{"sub": ""}',
    '{"sub": "not-a-uuid"}', '{"sub": {"sub": "x"}}', '[{"sub": "x"}]',
  ];
}

export function hostileInts() {
  return ['0', '-1', '1', '2', '3', '100', '101', '200', '100000', '100001', '2147483647', '-2147483648',
    '2147483648', '-2147483649', '99999999999999999999', '1.5', '1e3', 'NaN', '', ' 1 ', '0x10', 'one'];
}

export function hostileIntervals() {
  return ['0', '1 microsecond', '1 s', '30 s', '1 hour', '7 days', '-1 s', '-1 day', '1 mon -31 days',
    '-1 day 10 seconds', '1 day -10 seconds', '178000000 years', '-178000000 years', '2147483647 days',
    '2147483647 months', 'P1Y2M', 'infinity', 'forever', '', '1 fortnight', '@ 1 minute ago'];
}

export function hostileTimestamps() {
  return ['now', 'infinity', '-infinity', 'epoch', '294276-12-31 23:59:59+00', '4713-01-01 00:00:00+00 BC',
    '2000-01-01', '3000-01-01', '1999-12-31 23:59:60', '294277-01-01', 'yesterday', 'not a time', ''];
}

export function hostileReals() {
  return ['NaN', 'Infinity', '-Infinity', '0', '-0', '1e-45', '3.4e38', '1e39', '-1', '0.5', '1', '2', '0.95', 'x'];
}

export function hostileBooleans() {
  return ['true', 'false', 't', 'f', 'maybe', '2', ''];
}

export function hostileBytea(rng) {
  return ['', '\\x', '\\x00', '\\x0102', '\\xZZ', '\\x0', 'abc\\000def', '\\\\',
    '\\x' + rng.hex(2 * 1024), '\\x' + 'ab'.repeat(1024 * 1024)];
}

export function hostileRegprocedures() {
  return ['pg_sleep(double precision)', 'pg_terminate_backend(integer,bigint)', 'lower(text)',
    'jobq.purge(interval,text)', 'jobq.enqueue(text,jsonb,uuid,text,integer,timestamp with time zone,integer,integer,text,text)',
    'pg_read_file(text)', 'pg_catalog.now()', 'fuzzfn.h(jobq.jobs)', 'fuzzfn.uh(jobq.jobs,integer)',
    'fuzzfn.fin(jobq.jobs)', 'fuzzfn.v(jsonb)', 'fuzzfn.v_low(jsonb)', 'fuzzfn.v_out(jsonb)',
    'fuzzfn.h_wrong(jsonb)', '0', '1', '4294967295', '-1', '12345', 'nonexistent(integer)',
    'jobq.nope()', '"; DROP', '', 'lower', 'pg_catalog.lower(text, text)'];
}

export function hostileRoles() {
  return ['jobq_fuzz_victim', '"jobq_fuzz_victim"', 'nobody_' + MARK, 'public', 'PUBLIC', '', '0', '1',
    "x'; DROP ROLE postgres; --"];
}

// Array values of an element generator: empty, NULL elements, multi-
// dimensional, odd lower bounds, long.
export function hostileArray(rng, element, long = 10_000) {
  const n = rng.int(1, 4);
  const elems = Array.from({ length: n }, () => element());
  switch (rng.int(0, 9)) {
    case 0: return '{}';
    case 1: return arrayLiteral([null]);
    case 2: return arrayLiteral([...elems, null]);
    case 3: return `{{${elems.map(arrayElement).join(',')}},{${elems.map(arrayElement).join(',')}}}`;
    case 4: return arrayLiteral(elems, rng.pick([0, 5, -3, 2147483000]));
    case 5: return arrayLiteral(Array.from({ length: long }, () => element()));
    case 6: return arrayLiteral([elems[0], elems[0]]);
    case 7: return `{${'{'.repeat(7)}}${'}'.repeat(7)}`;
    case 8: return 'not an array';
    default: return arrayLiteral(elems);
  }
}
