// Pieces several pages share: stat cards, tables, segmented choices, token breakdowns.
import { fill, h, message, uid, type Child } from "./dom";
import { costDigits, count, costSpan, duration, timestamp, usd } from "./format";
import type { RequestAttempt, RequestRow, RequestTokens } from "./types";

export function statCard(label: string, value: Child, detail?: Child): HTMLElement {
  return h("div", { class: "stat" }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value), detail ? h("div", { class: "stat-detail" }, detail) : null);
}

export function statGrid(...cards: HTMLElement[]): HTMLElement {
  return h("section", { class: "stats", "aria-label": "Totals" }, cards);
}

export interface Column {
  label: string;
  numeric?: boolean;
}

/** Body rows; each cell carries its column's label, which phones show beside it. */
export function tableRows(columns: Column[], rows: Child[][], rowClass: string | null = null): HTMLTableRowElement[] {
  return rows.map((cells) => h("tr", { class: rowClass }, cells.map((cell, index) => h("td", { class: columns[index]?.numeric ? "num" : null, "data-label": columns[index]?.label }, cell))));
}

/** A table with a caption (read by screen readers, hidden when a heading already says it). */
export function table(caption: string, columns: Column[], rows: Child[][], empty = "Nothing in this range."): HTMLElement {
  return tableOf(caption, columns, tableRows(columns, rows), empty);
}

/** `table` for rows already made (by `tableRows`). */
export function tableOf(caption: string, columns: Column[], rows: HTMLTableRowElement[], empty = "Nothing in this range."): HTMLElement {
  const head = h("thead", null, h("tr", null, columns.map((column) => h("th", { scope: "col", class: column.numeric ? "num" : null }, column.label))));
  const body = h("tbody", null, rows.length ? rows : h("tr", null, h("td", { colspan: String(columns.length), class: "empty" }, empty)));
  const wrap = h("div", { class: "table-wrap" }, h("table", { class: "responsive" }, h("caption", { class: "sr-only" }, caption), head, body));
  alignCosts(wrap);
  return wrap;
}

/** One rule for the costs of a column (cells of one `data-label`): each is written with the
 * decimals the column's smallest non-zero amount needs (`costDigits`), the exact amount on hover.
 * Call again when rows are added. */
export function alignCosts(root: ParentNode): void {
  const columns = new Map<string, HTMLElement[]>();
  for (const span of root.querySelectorAll<HTMLElement>("td .cost")) {
    if (span.closest("[role=tooltip]")) continue;
    const label = span.closest("td")?.dataset.label ?? "";
    const spans = columns.get(label);
    if (spans) spans.push(span);
    else columns.set(label, [span]);
  }
  for (const spans of columns.values()) {
    const digits = Math.max(...spans.map((span) => costDigits(span.dataset.exact ?? "0")));
    for (const span of spans) span.textContent = usd(span.dataset.exact ?? "0", digits);
  }
}

/** A radio group drawn as segmented buttons: arrow keys move, the browser does the rest. */
export function segmented(legend: string, name: string, choices: [string, string][], selected: string, changed: (value: string) => void): HTMLElement {
  return h(
    "fieldset",
    { class: "segmented" },
    h("legend", null, legend),
    h(
      "div",
      { class: "segments" },
      choices.map(([value, label]) => {
        const id = uid(name);
        const input = h("input", { type: "radio", name, id, value, checked: value === selected });
        input.addEventListener("change", () => input.checked && changed(value));
        return [input, h("label", { for: id }, label)];
      }),
    ),
  );
}

function breakdownLines(tokens: RequestTokens): [string, number | string][] {
  const lines: [string, number | string][] = [["Input", tokens.input], ["Output", tokens.output]];
  if (tokens.reasoning) lines.push(["of which reasoning", tokens.reasoning]);
  if (tokens.cache_creation) {
    lines.push(["Cache write", tokens.cache_creation]);
    if (tokens.cache_creation_5m !== null && tokens.cache_creation_1h !== null) {
      lines.push(["of which 5-minute", tokens.cache_creation_5m], ["of which 1-hour", tokens.cache_creation_1h]);
    }
  }
  if (tokens.cache_read) lines.push(["Cache read", tokens.cache_read]);
  return lines;
}

/** Puts a tooltip next to its anchor. Fixed to the viewport, so a scrolling table can't clip it:
 * below the anchor when there is room, above it otherwise, and never past the screen's edges. */
function placeTip(anchor: HTMLElement, tip: HTMLElement): void {
  const box = anchor.getBoundingClientRect();
  const width = tip.offsetWidth;
  const height = tip.offsetHeight;
  const left = Math.min(Math.max(8, box.right - width), window.innerWidth - width - 8);
  const below = box.bottom + 6 + height <= window.innerHeight;
  tip.style.left = `${left}px`;
  tip.style.top = `${below ? box.bottom + 6 : Math.max(8, box.top - 6 - height)}px`;
}

// Escape hides a shown breakdown, hovered or focused, until the pointer or focus leaves it
// (WCAG 1.4.13: content shown on hover can be dismissed without moving).
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  for (const anchor of document.querySelectorAll(".has-tip:hover, .has-tip:focus")) anchor.classList.add("dismissed");
});

/** `content` with a tooltip that hovering or focusing it shows (focus works by touch, too). */
function withTip(content: Child, tip: Child): HTMLElement {
  const id = uid("tip");
  const place = (event: Event): void => {
    const anchor = event.currentTarget as HTMLElement;
    placeTip(anchor, anchor.querySelector(".tip") as HTMLElement);
  };
  const restore = (event: Event): void => (event.currentTarget as HTMLElement).classList.remove("dismissed");
  return h(
    "span",
    { class: "has-tip", tabindex: "0", "aria-describedby": id, onmouseenter: place, onfocus: place, onmouseleave: restore, onblur: restore },
    content,
    h("span", { class: "tip", role: "tooltip", id }, tip),
  );
}

/** Total tokens; hovering or focusing it shows the input/output/cache breakdown. */
export function tokenTotal(row: RequestRow): HTMLElement {
  const lines = breakdownLines(row.tokens);
  return withTip(
    [count(row.tokens.total), row.usage_estimated ? h("span", { class: "badge warn", title: "Estimated: the provider sent no usage" }, "est.") : null],
    h("dl", null, lines.map(([name, value]) => [h("dt", { class: name.startsWith("of which") ? "sub" : null }, name), h("dd", null, typeof value === "number" ? count(value) : value)])),
  );
}

const STATUS_TEXT: Record<string, string> = { ok: "OK", error: "Error", partial: "Partial" };

export function statusBadge(status: string): HTMLElement {
  return h("span", { class: `badge status-${status}` }, STATUS_TEXT[status] ?? status);
}

/** The provider; when a route other than the requested model was taken, that route in a tooltip. */
function providerName(provider: string | null, route: string | null, taken = "Served by"): Child {
  if (!provider) return h("span", { class: "muted" }, "—");
  if (!route) return provider;
  return withTip(provider, [`${taken} `, h("code", null, route)]);
}

/** Why a request or attempt failed: the upstream's status and our error code. */
function why(failure: { upstream_status: number | null; error_code: string | null }): string {
  return [failure.upstream_status, failure.error_code].filter((part) => part !== null).join(" ");
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function requestRow(row: RequestRow, timestamp: (iso: string) => string): Child[] {
  const failed = row.attempts.length;
  return [
    h("time", { datetime: row.created_at }, timestamp(row.created_at)),
    // The door it came in by, under the model: a column of its own left no room for the status at 1280 px.
    h("span", null, h("span", { class: "model" }, row.model), row.endpoint ? h("code", { class: "endpoint", title: "Endpoint" }, ENDPOINT_PATH[row.endpoint] ?? row.endpoint) : null),
    providerName(row.provider, row.route),
    tokenTotal(row),
    costSpan(row.cost),
    latency(row.latency_ms, row.ttft_ms, row.streamed),
    h("span", { class: "key-cell" }, row.key_name ?? row.key_id, named("user", row.user), named("app", row.app)),
    h(
      "span",
      null,
      statusBadge(row.status),
      failed ? h("span", { class: "fell-back-note" }, `fell back after ${plural(failed, "failed attempt")}`) : null,
      row.status === "error" && why(row) ? h("span", { class: "why" }, why(row)) : null,
    ),
  ];
}

/** The end user or app a request named, as a link to the usage it filters. */
function named(filter: "user" | "app", value: string | null): Child {
  if (!value) return null;
  return h("a", { class: `named ${filter}`, href: `/usage?${new URLSearchParams({ [filter]: value })}`, title: `Usage of ${filter} ${value}` }, h("span", { class: "muted" }, `${filter} `), value);
}

export const REQUEST_COLUMNS: Column[] = [
  { label: "Time" },
  { label: "Model" },
  { label: "Provider" },
  { label: "Tokens", numeric: true },
  { label: "Cost", numeric: true },
  { label: "Latency", numeric: true },
  { label: "Key, user, app" },
  { label: "Status" },
];

// The inference endpoint a request came to, as its path reads.
const ENDPOINT_PATH: Record<string, string> = {
  "chat.completions": "/v1/chat/completions",
  messages: "/v1/messages",
  responses: "/v1/responses",
};

/** How long a request took; a streamed one's time to its first token under it. */
function latency(ms: number | null, ttftMs: number | null, streamed: boolean): Child {
  if (ms === null) return h("span", { class: "muted" }, "—");
  return h("span", null, duration(ms), streamed && ttftMs !== null ? h("span", { class: "ttft muted", title: "Time to first token" }, `first token ${duration(ttftMs)}`) : null);
}

// An attempt's row lines up under its request's columns; on a phone, its own labels.
const ATTEMPT_COLUMNS: Column[] = REQUEST_COLUMNS.map((column, index) => (index === 0 ? { label: "Failed" } : index === 1 ? { label: "Route" } : column));

/** A failed attempt, under its request: its number and how long it took, where it went, why it failed. */
function attemptRow(attempt: RequestAttempt): Child[] {
  const reason = why(attempt);
  return [
    h("span", null, h("span", { class: "nest", "aria-hidden": "true" }, "↳ "), `Attempt ${attempt.attempt ?? "?"}`),
    attempt.route ? h("span", { class: "model" }, attempt.route) : null,
    providerName(attempt.provider, attempt.route, "Tried"),
    null,
    costSpan(attempt.cost),
    duration(attempt.latency_ms),
    null,
    h("span", null, statusBadge(attempt.status), reason ? h("span", { class: "why" }, reason) : null),
  ];
}

/** The request log's rows: each request, then a row for each attempt that failed before it fell back. */
export function requestRows(rows: RequestRow[], timestamp: (iso: string) => string): HTMLTableRowElement[] {
  return rows.flatMap((row) => [
    ...tableRows(REQUEST_COLUMNS, [requestRow(row, timestamp)], row.attempts.length ? "request fell-back" : "request"),
    ...tableRows(ATTEMPT_COLUMNS, row.attempts.map(attemptRow), "attempt"),
  ]);
}

const PERIOD_WORDS: Record<string, string> = { monthly: "this month", weekly: "this week", daily: "today", none: "in all" };

/** "$1.20 of $5.00 this month", with a bar of the share used, "Reached" at the limit, and when
 * the period resets. */
export function spendOfLimit(spent: string, limit: string, period: string, nextReset: string | null): HTMLElement {
  const cap = Number(limit);
  const share = cap > 0 ? Math.min(Number(spent) / cap, 1) : 1;
  const reached = Number(spent) >= cap;
  return h(
    "div",
    { class: "budget" },
    h("span", null, costSpan(spent), " of ", costSpan(limit), ` ${PERIOD_WORDS[period] ?? period}`),
    h("progress", { max: "1", value: String(share), "aria-label": `${Math.round(share * 100)}% of the limit used`, class: reached ? "reached" : null }),
    reached ? h("span", { class: "badge state-disabled" }, "Reached") : null,
    nextReset ? h("span", { class: "muted small" }, `Resets ${timestamp(nextReset)}`) : null,
  );
}

/** A list's redraw: after `refresh`, keyboard focus goes back to the button that was used (its
 * `data-action`, in the row actions whose `attribute` is the row's id); a failure is shown in `status`. */
export function reloader(refresh: () => Promise<void>, list: HTMLElement, status: HTMLElement, attribute: string): (id?: string, action?: string) => void {
  return (id, action) => {
    refresh()
      .then(() => {
        if (id && action) list.querySelector<HTMLElement>(`.row-actions[${attribute}="${CSS.escape(id)}"] [data-action="${action}"]`)?.focus();
      })
      .catch((error: Error) => fill(status, message("error", error.message)));
  };
}

export function loading(text = "Loading…"): HTMLElement {
  return h("p", { class: "muted loading", role: "status" }, text);
}
