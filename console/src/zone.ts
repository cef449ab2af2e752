// The time zone the console shows and picks dates in: the browser's own, or UTC (the ledger's),
// as the person chose in the top bar (kept in localStorage).

const KEY = "meterway.timeZone";

export type ZoneChoice = "local" | "utc";

export function zoneChoice(): ZoneChoice {
  return localStorage.getItem(KEY) === "utc" ? "utc" : "local";
}

export function chooseZone(choice: ZoneChoice): void {
  localStorage.setItem(KEY, choice);
}

/** The browser's IANA time zone ("Europe/Paris"); UTC when it says none. */
export function browserZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** The zone dates are shown and picked in now. */
export function activeZone(): string {
  return zoneChoice() === "utc" ? "UTC" : browserZone();
}

/** Whether the zone is UTC itself (not a zone that is at UTC+00:00 part of the year). */
export function isUtc(zone = activeZone()): boolean {
  return ["UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"].includes(zone);
}

function wallClock(date: Date, zone: string): Record<string, number> {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(date);
  return Object.fromEntries(parts.filter((part) => part.type !== "literal").map((part) => [part.type, Number(part.value)]));
}

/** The zone's offset from UTC at `date`, in minutes east of Greenwich. */
export function offsetMinutes(date: Date, zone = activeZone()): number {
  const wall = wallClock(date, zone);
  const asUtc = Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second);
  return Math.round((asUtc - Math.floor(date.getTime() / 1000) * 1000) / 60_000);
}

/** "UTC+01:00", "UTC−05:30", or "UTC" for an offset of `minutes`. */
export function offsetText(minutes: number): string {
  if (minutes === 0) return "UTC";
  const sign = minutes > 0 ? "+" : "−";
  const whole = Math.abs(minutes);
  return `UTC${sign}${String(Math.floor(whole / 60)).padStart(2, "0")}:${String(whole % 60).padStart(2, "0")}`;
}

/** The calendar date (YYYY-MM-DD) an instant falls on in the zone. */
export function dateIn(date: Date, zone = activeZone()): string {
  const wall = wallClock(date, zone);
  return `${String(wall.year).padStart(4, "0")}-${String(wall.month).padStart(2, "0")}-${String(wall.day).padStart(2, "0")}`;
}

/** The date `days` after a YYYY-MM-DD date (before, when negative). */
export function shiftDate(text: string, days: number): string {
  const [year, month, day] = text.split("-").map(Number);
  const shifted = new Date(Date.UTC(year, month - 1, day + days));
  shifted.setUTCFullYear(year, month - 1, day + days); // years before 100 stay themselves
  return shifted.toISOString().slice(0, 10);
}

/** The instant a calendar date (YYYY-MM-DD) starts in the zone: its local midnight (or the first
 * minute after it that exists, on a day a clock jumps over midnight). */
export function startOf(text: string, zone = activeZone()): Date {
  const [year, month, day] = text.split("-").map(Number);
  const midnight = new Date(Date.UTC(year, month - 1, day));
  midnight.setUTCFullYear(year, month - 1, day);
  // The offset at the guess, then at the instant found: right on both sides of a clock change.
  let instant = midnight.getTime() - offsetMinutes(midnight, zone) * 60_000;
  instant = midnight.getTime() - offsetMinutes(new Date(instant), zone) * 60_000;
  return new Date(instant);
}
