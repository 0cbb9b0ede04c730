// HTTP dates: formatting the Date / Last-Modified headers and parsing
// If-Modified-Since.
//
// RFC 9110 §5.6.7 defines one preferred format, IMF-fixdate
//     Sun, 06 Nov 1994 08:49:37 GMT
// which is exactly what JavaScript's Date#toUTCString() produces. Senders must
// use it; recipients must also accept two obsolete formats (RFC 850 and C's
// asctime), so the parser below knows all three.

/** Format a millisecond timestamp as an IMF-fixdate (always 29 characters). */
export function formatHttpDate(epochMs: number): string {
  return new Date(epochMs).toUTCString();
}

// The Date header (RFC 9110 §6.6.1) has a resolution of one second, yet a busy
// server answers many thousands of requests per second. So the string is built
// once per second and reused: a cheap integer comparison instead of a Date
// object and a string per response. Prepared responses (see handle-request.ts)
// compare this string by identity to know when they must be rebuilt.
let cachedSecond = -1;
let cachedDate = '';

/** The Date header value for "now", rebuilt at most once per second. */
export function currentHttpDate(nowMs: number = Date.now()): string {
  const second = Math.floor(nowMs / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedDate = formatHttpDate(second * 1000);
  }
  return cachedDate;
}

const DAY_NAMES = 'Mon|Tue|Wed|Thu|Fri|Sat|Sun';
const LONG_DAY_NAMES = 'Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday';
const MONTH_NAMES = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTHS = MONTH_NAMES.join('|');

// HTTP-date is case-sensitive (RFC 9110 §5.6.7), so none of these use /i.
const IMF_FIXDATE = new RegExp(`^(?:${DAY_NAMES}), (\\d{2}) (${MONTHS}) (\\d{4}) (\\d{2}):(\\d{2}):(\\d{2}) GMT$`);
const RFC850_DATE = new RegExp(`^(?:${LONG_DAY_NAMES}), (\\d{2})-(${MONTHS})-(\\d{2}) (\\d{2}):(\\d{2}):(\\d{2}) GMT$`);
const ASCTIME_DATE = new RegExp(`^(?:${DAY_NAMES}) (${MONTHS}) ([ \\d]\\d) (\\d{2}):(\\d{2}):(\\d{2}) (\\d{4})$`);

/**
 * Parse any of the three HTTP-date formats. Returns epoch milliseconds, or NaN
 * when the text is not a valid HTTP-date (callers then ignore the header, as
 * RFC 9110 §13.1.3 requires for If-Modified-Since).
 *
 * We do not hand the text to Date.parse(): it accepts far more than HTTP
 * allows and reads asctime dates (which carry no zone) in local time.
 */
export function parseHttpDate(text: string): number {
  let match = IMF_FIXDATE.exec(text);
  if (match !== null) {
    const [, day, month, year, hour, minute, second] = match as unknown as string[];
    return utcMillis(Number(year), month!, Number(day), hour!, minute!, second!);
  }
  match = RFC850_DATE.exec(text);
  if (match !== null) {
    const [, day, month, twoDigitYear, hour, minute, second] = match as unknown as string[];
    return utcMillis(fullYearOf(Number(twoDigitYear)), month!, Number(day), hour!, minute!, second!);
  }
  match = ASCTIME_DATE.exec(text);
  if (match !== null) {
    const [, month, day, hour, minute, second, year] = match as unknown as string[];
    return utcMillis(Number(year), month!, Number(day!.trim()), hour!, minute!, second!);
  }
  return NaN;
}

// RFC 9110 §5.6.7: a two-digit year that would be more than 50 years in the
// future means the most recent past year with those last two digits.
function fullYearOf(twoDigitYear: number): number {
  const thisYear = new Date().getUTCFullYear();
  let year = Math.floor(thisYear / 100) * 100 + twoDigitYear;
  if (year > thisYear + 50) year -= 100;
  return year;
}

function utcMillis(year: number, monthName: string, day: number, hour: string, minute: string, second: string): number {
  const month = MONTH_NAMES.indexOf(monthName);
  const h = Number(hour);
  const m = Number(minute);
  const s = Number(second);
  // Leap second 60 is allowed by the grammar; Date.UTC rolls it over, which is fine.
  if (h > 23 || m > 59 || s > 60) return NaN;
  const millis = Date.UTC(year, month, day, h, m, s);
  // Date.UTC silently turns "31 Feb" into "3 Mar"; such a date is invalid.
  if (new Date(millis).getUTCDate() !== day) return NaN;
  return millis;
}
