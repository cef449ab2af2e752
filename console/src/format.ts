import { activeZone, dateIn, isUtc, offsetMinutes, offsetText } from "./zone";

// Numbers as people read them. Costs arrive as exact decimal strings; the exact value stays in a
// `data-exact` attribute and the tooltip, the display rounds.

const integer = new Intl.NumberFormat("en-US");
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

export function count(value: number): string {
  return integer.format(value);
}

/** Requests served and those that failed, in one phrase: "1,204 requests, 3 failed". */
export function requestsPhrase(requests: number, errors: number): string {
  return `${count(requests)} ${requests === 1 ? "request" : "requests"}${errors ? `, ${count(errors)} failed` : ""}`;
}

/** The note under a count of requests served: how many failed. */
export function errorsNote(errors: number): string {
  return errors ? `${count(errors)} failed (not counted)` : "none failed";
}

export function shortCount(value: number): string {
  return value < 10_000 ? integer.format(value) : compact.format(value);
}

/** The decimals an amount needs: cents from a dollar up, 4 below, 6 under a cent, so that small
 * spend never shows as $0.00. A table's column takes the most any of its amounts needs
 * (`alignCosts`): one rule, and a column's figures line up. */
export function costDigits(exact: string | number): number {
  const magnitude = Math.abs(typeof exact === "number" ? exact : Number(exact));
  return magnitude === 0 || magnitude >= 1 ? 2 : magnitude >= 0.01 ? 4 : 6;
}

/** USD for display, with `digits` decimals (by default those the amount needs). */
export function usd(exact: string | number, digits = costDigits(exact)): string {
  const value = typeof exact === "number" ? exact : Number(exact);
  const magnitude = Math.abs(value);
  const text = magnitude > 0 && magnitude < 0.000001 ? "<$0.000001" : null;
  if (text) return value < 0 ? `-${text}` : text;
  return new Intl.NumberFormat("en-US", {
    style: "currency",
    currency: "USD",
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  }).format(value);
}

/** USD on a chart's axis: three significant digits at most ($0.8, $1.25, $0.0002). */
export function usdTick(value: number): string {
  if (value === 0) return "$0";
  return new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumSignificantDigits: 3 }).format(value);
}

/** How a chart writes its values: in full in tooltips, shorter on its axis. */
export interface ChartFormat {
  value: (value: number) => string;
  axis: (value: number) => string;
  /** Whole numbers only (requests, tokens): no tick between them. */
  whole: boolean;
}

export const MONEY: ChartFormat = { value: usd, axis: usdTick, whole: false };
export const COUNT: ChartFormat = { value: shortCount, axis: shortCount, whole: true };

/** A cost cell's content: rounded text, exact value on hover and in `data-exact`. */
export function costSpan(exact: string): HTMLSpanElement {
  const span = document.createElement("span");
  span.className = "cost";
  span.textContent = usd(exact);
  span.title = `$${exact} exactly`;
  span.dataset.exact = exact;
  return span;
}

/** A duration: milliseconds below a second, else seconds to one decimal. */
export function duration(ms: number): string {
  return ms < 1000 ? `${integer.format(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** A timestamp in the zone the console shows (the browser's, or UTC), with the zone's name. */
export function timestamp(iso: string): string {
  const zone = activeZone();
  const text = new Intl.DateTimeFormat("en-GB", {
    year: "numeric",
    month: "short",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    timeZone: zone,
    hour12: false,
  }).format(new Date(iso));
  return `${text} ${isUtc(zone) ? "UTC" : zoneName(new Date(iso), zone)}`;
}

/** The zone's short name at that date ("CET", "GMT+5:30"). */
function zoneName(date: Date, zone: string): string {
  const part = new Intl.DateTimeFormat("en-GB", { timeZone: zone, timeZoneName: "short" }).formatToParts(date).find((each) => each.type === "timeZoneName");
  return part?.value ?? offsetText(offsetMinutes(date, zone));
}

/** A YYYY-MM-DD date in the zone the console shows. */
export function isoDate(date: Date): string {
  return dateIn(date);
}

/** A bucket's start as a short axis label for its granularity: minutes and hours in the zone the
 * console shows; days and months are the rollups' UTC days and months, and say their UTC date. */
export function bucketLabel(iso: string, granularity: string): string {
  const date = new Date(iso);
  const options: Intl.DateTimeFormatOptions =
    granularity === "minute" || granularity === "hour"
      ? { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: activeZone() }
      : granularity === "day"
        ? { month: "short", day: "numeric", timeZone: "UTC" }
        : { month: "short", year: "numeric", timeZone: "UTC" };
  return new Intl.DateTimeFormat("en-GB", options).format(date);
}

/** Whether a chart of `granularity` has bars of UTC days or months while the console shows
 * another zone: the page says so. */
export function utcBars(granularity: string): boolean {
  return (granularity === "day" || granularity === "month") && !isUtc();
}

export function relative(iso: string | null): string {
  if (!iso) return "never";
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} d ago`;
}
