// Usage: what was spent in a date range, on which model, with which key, for which end user or app —
// and the requests behind it.
import { barChart, metricOf, stackedSeries, type ChartMetric, type Series } from "../charts";
import { REQUEST_COLUMNS, alignCosts, loading, requestRows, segmented, statCard, statGrid, table, tableOf } from "../components";
import type { PageContext } from "../context";
import { fill, field, h, message, options } from "../dom";
import { exportButton } from "../exports";
import { COUNT, MONEY, bucketLabel, costSpan, count, errorsNote, isoDate, timestamp, usd, utcBars } from "../format";
import type { Counters, Key, RequestRow, Usage } from "../types";
import { activeZone, dateIn, isUtc, offsetMinutes, offsetText, shiftDate, startOf } from "../zone";

const DEFAULT_DAYS = 30;
const PAGE_SIZE = 50;
const DATE_PAUSE_MS = 400;

interface Filters {
  start: string;
  end: string;
  model: string;
  key: string;
  /** The end user and the app the requests named ("(none)": those that named none). Usage is
   * filtered by one of key, user and app at a time. */
  user: string;
  app: string;
  /** The request log's status: "" (all), ok, partial or error. */
  status: string;
}

const STATUSES: [string, string][] = [
  ["", "All statuses"],
  ["ok", "Served"],
  ["partial", "Cut short"],
  ["error", "Failed"],
];

type Metric = ChartMetric;
const METRICS: [Metric, string][] = [
  ["cost", "Spend"],
  ["requests", "Requests"],
  ["total_tokens", "Tokens"],
];

/** `text` when it is a calendar date written YYYY-MM-DD, else null. */
function calendarDate(text: string | null): string | null {
  if (!text || !/^\d{4}-\d{2}-\d{2}$/.test(text)) return null;
  const parsed = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(parsed.getTime()) && parsed.toISOString().slice(0, 10) === text ? text : null;
}

/** The filters a link asks for; a date it spells wrong is replaced by the default one and named in
 * `unread` (the page says so, instead of showing the API's refusal with nothing to choose from). */
function filtersFrom(params: URLSearchParams): { filters: Filters; unread: string[] } {
  const today = dateIn(new Date());
  const unread = ["start", "end"].filter((name) => params.get(name) !== null && calendarDate(params.get(name)) === null);
  return {
    filters: {
      start: calendarDate(params.get("start")) ?? shiftDate(today, -(DEFAULT_DAYS - 1)),
      end: calendarDate(params.get("end")) ?? today,
      model: params.get("model") ?? "",
      key: params.get("key") ?? "",
      user: params.get("user") ?? "",
      app: params.get("app") ?? "",
      status: STATUSES.some(([value]) => value === params.get("status")) ? (params.get("status") as string) : "",
    },
    unread: unread.map((name) => `${name}=${params.get(name)}`),
  };
}

/** A date field written YYYY-MM-DD whatever the browser's locale (a native date input shows the
 * locale's order, mm/dd/yyyy in the US, while the page and its links write ISO dates), with a
 * button that opens the browser's own calendar to pick one. */
function isoDateField(label: string, name: string, value: string): { element: HTMLElement; input: HTMLInputElement } {
  const input = h("input", { type: "text", name, value, required: true, inputmode: "numeric", pattern: "\\d{4}-\\d{2}-\\d{2}", placeholder: "YYYY-MM-DD", autocomplete: "off", size: "10", class: "iso-date" });
  const picker = h("input", { type: "date", tabindex: "-1", "aria-hidden": "true", class: "date-picker" });
  const open = h("button", { type: "button", class: "ghost small pick-date", "aria-label": `Pick the “${label}” date from a calendar` }, "Calendar");
  open.addEventListener("click", () => {
    picker.value = calendarDate(input.value) ?? "";
    try {
      picker.showPicker();
    } catch {
      input.focus(); // a browser without a picker: the date is typed
    }
  });
  picker.addEventListener("change", (event) => {
    event.stopPropagation();
    if (!picker.value) return;
    input.value = picker.value;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });
  const element = field(label, input);
  const wrapper = h("span", { class: "date-field" });
  input.replaceWith(wrapper);
  wrapper.append(input, open, picker);
  return { element, input };
}

// Minute rollups are kept 8 days (the API's `MINUTE_RETENTION`): an older edge must be a whole hour.
const MINUTE_ROWS_MS = 8 * 86_400_000;
const HOUR_MS = 3_600_000;

/** The window the API is asked for: the dates' whole days in the zone shown. In UTC, the dates
 * themselves; elsewhere the instants of their local midnights (the end's next day's), exact for a
 * zone whose offset is whole hours. A zone that is not (UTC+05:30) starts its days on the half
 * hour: an edge older than the 8 days minute rows are kept is moved back to its UTC hour
 * (`rounded`), the page says so. */
function windowOf(filters: Filters, now = Date.now()): { start: string; end: string; rounded: boolean } {
  if (isUtc()) return { start: filters.start, end: filters.end, rounded: false };
  const oldestMinute = Math.floor((now - MINUTE_ROWS_MS) / HOUR_MS) * HOUR_MS + 2 * HOUR_MS; // an hour of margin
  let rounded = false;
  const edge = (date: Date): string => {
    const time = date.getTime();
    if (time % HOUR_MS === 0 || time >= oldestMinute) return date.toISOString();
    rounded = true;
    return new Date(Math.floor(time / HOUR_MS) * HOUR_MS).toISOString();
  };
  const start = edge(startOf(filters.start));
  const end = edge(startOf(shiftDate(filters.end, 1)));
  return { start, end, rounded };
}

function query(filters: Filters): Record<string, string> {
  const { start, end } = windowOf(filters);
  return { start, end, model: filters.model, key: filters.key, user: filters.user, app: filters.app };
}

/** "UTC", or the browser's zone and its offset today: "Europe/Paris (UTC+01:00)". */
function zoneLabel(): string {
  return isUtc() ? "UTC" : `${activeZone()} (${offsetText(offsetMinutes(new Date()))})`;
}

/** A text field for a user or an app, offering the ones the request log has shown. */
function namedField(label: string, name: string, value: string): { element: HTMLElement; input: HTMLInputElement; seen: HTMLDataListElement } {
  const seen = h("datalist", { id: `${name}-choices` });
  const input = h("input", { type: "search", name, value, list: seen.id, maxlength: "256", autocomplete: "off", placeholder: "Any", size: "14" });
  const element = field(label, input);
  element.append(seen);
  return { element, input, seen };
}

/** The page's address for `filters` (the ones set), so that a view can be shared. */
function addressOf(filters: Filters): string {
  const { start, end, model, key, user, app, status } = filters;
  return `/usage?${new URLSearchParams(Object.entries({ start, end, model, key, user, app, status }).filter(([, value]) => value))}`;
}

/** The chart's series, one per model (the table's order: most spent first), the rest as "Other". */
function modelSeries(usage: Usage, metric: Metric): Series[] {
  const names = usage.models.map((row): [string, string] => [row.model, row.model]);
  return stackedSeries(usage.series.buckets, names, (bucket, name) => metricOf(bucket.models?.[name], metric));
}

export const usagePage = async (context: PageContext): Promise<void> => {
  const { api, main } = context;
  const { filters, unread } = filtersFrom(context.params);
  let metric: Metric = "cost";

  const start = isoDateField("From", "start", filters.start);
  const end = isoDateField("To", "end", filters.end);
  const startInput = start.input;
  const endInput = end.input;
  const modelSelect = h("select", { name: "model" });
  const keySelect = h("select", { name: "key" });
  const user = namedField("User", "user", filters.user);
  const app = namedField("App", "app", filters.app);
  // Usage is filtered by one of them at a time: choosing one clears the others.
  const owners: (HTMLInputElement | HTMLSelectElement)[] = [keySelect, user.input, app.input];
  const statusSelect = h("select", { name: "status" }, options(STATUSES, filters.status));
  const form = h(
    "form",
    { class: "filters", "aria-label": "Filters" },
    start.element,
    end.element,
    field("Model", modelSelect),
    field("API key", keySelect),
    user.element,
    app.element,
  );
  const errors = h("div", { class: "page-errors" });
  const notice = h("div", { class: "page-errors" });
  const rounding = h("div", { class: "page-errors" });
  if (unread.length) {
    fill(notice, message("info", `The link's ${unread.join(" and ")} is not a date (YYYY-MM-DD): showing ${filters.start} to ${filters.end} instead.`));
    history.replaceState(null, "", addressOf(filters));
  }
  const stats = h("div", null, loading());
  const chartArea = h("div", { class: "chart-area" });
  const models = h("div");
  const log = h("div");
  const more = h("div", { class: "more" });
  const exporter = exportButton(
    api,
    "Export CSV",
    () => {
      const { start, end } = windowOf(filters);
      return { kind: "requests", format: "csv", start, end, model: filters.model || null, key: filters.key || null, user: filters.user || null, app: filters.app || null };
    },
    context.onLeave,
  );
  let destroyChart = (): void => {};
  context.onLeave(() => destroyChart());

  fill(
    main,
    h("div", { class: "page-head" }, h("h1", null, "Usage"), h("p", { class: "muted zone-note" }, `Dates are whole days in ${zoneLabel()}; both ends are included. Filter by one of API key, user and app at a time.`)),
    form,
    notice,
    rounding,
    errors,
    stats,
    h(
      "section",
      { class: "card", "aria-labelledby": "usage-chart-title" },
      h("div", { class: "card-head" }, h("h2", { id: "usage-chart-title" }, "Over time"), segmented("Chart shows", "usage-metric", METRICS, metric, (value) => {
        metric = value as Metric;
        draw();
      })),
      chartArea,
    ),
    h("section", { class: "card", "aria-labelledby": "by-model-title" }, h("h2", { id: "by-model-title" }, "By model"), models),
    h(
      "section",
      { class: "card", "aria-labelledby": "requests-title" },
      h("div", { class: "card-head" }, h("h2", { id: "requests-title" }, "Requests"), h("div", { class: "card-tools" }, field("Status", statusSelect), exporter.button)),
      h("p", { class: "muted note" }, "The export has every request in the range (and of the filters) as one CSV row. On a large account, narrow the range or filter by model, key, user or app to get it sooner."),
      exporter.status,
      log,
      more,
    ),
  );

  let usage: Usage | null = null;
  let keys: Key[] = [];
  // Each load gets a number; an answer to an older load (the filters changed meanwhile) is dropped,
  // so the cards, table, chart and log always show the same filters.
  let generation = 0;
  let modelChoices: { scope: string; names: string[] } | null = null;

  const draw = (): void => {
    destroyChart();
    fill(chartArea);
    if (!usage) return;
    const shown = usage;
    const buckets = shown.series.buckets;
    const format = metric === "cost" ? MONEY : COUNT;
    const label = METRICS.find(([value]) => value === metric)?.[1] ?? "";
    const amount = (counters: Counters): string => (metric === "cost" ? usd(counters.cost) : count(metricOf(counters, metric)));
    const byModel = shown.series.by_model && shown.models.length > 1;
    // Said for screen readers: each model of the chart with its amount, as the table has it.
    const parts = byModel ? `, ${shown.models.map((row) => `${row.model} ${amount(row)}`).join(", ")}` : "";
    const { element, chart } = barChart(
      buckets.map((bucket) => bucketLabel(bucket.start, shown.series.granularity)),
      byModel ? modelSeries(shown, metric) : [{ label, values: buckets.map((bucket) => metricOf(bucket, metric)) }],
      `${label} per ${shown.series.granularity}${byModel ? " by model" : ""} from ${timestamp(shown.start)} until ${timestamp(shown.end)}: ${amount(shown.totals)} in all${parts}.`,
      format,
    );
    destroyChart = () => chart.destroy();
    fill(
      chartArea,
      element,
      shown.series.by_model || shown.models.length < 2 ? null : h("p", { class: "muted note" }, "Too many days × models to show each model: narrow the range to see them stacked."),
      utcBars(shown.series.granularity) ? h("p", { class: "muted note utc-bars" }, `Each bar is a ${shown.series.granularity} in UTC (the rollups' own); the totals and the table are your ${shown.series.granularity === "day" ? "days" : "dates"} exactly.`) : null,
    );
  };

  async function loadRequests(asked: Filters, mine: number, cursor: string | null): Promise<void> {
    const page = await api.get<{ data: RequestRow[]; next_cursor: string | null }>("/api/usage/requests", { ...query(asked), status: asked.status, cursor, limit: PAGE_SIZE });
    if (!context.current() || mine !== generation) return;
    offer(user.seen, page.data.map((row) => row.user));
    offer(app.seen, page.data.map((row) => row.app));
    const rows = requestRows(page.data, timestamp);
    const none = asked.status ? `No ${STATUSES.find(([value]) => value === asked.status)?.[1].toLowerCase()} requests in this range.` : "No requests in this range.";
    if (cursor === null) fill(log, tableOf("Requests, newest first", REQUEST_COLUMNS, rows, none));
    else {
      log.querySelector("tbody")?.append(...rows);
      alignCosts(log);
    }
    if (!page.next_cursor) {
      fill(more);
      return;
    }
    const next = page.next_cursor;
    const button = h("button", { type: "button", class: "secondary" }, "Load more");
    button.addEventListener("click", () => {
      button.disabled = true;
      button.textContent = "Loading…";
      loadRequests(asked, mine, next).catch((error: unknown) => {
        button.disabled = false;
        button.textContent = "Load more";
        showError(error);
      });
    });
    fill(more, button);
  }

  /** Adds the users or apps a page of the log named to a field's choices. */
  function offer(list: HTMLDataListElement, values: (string | null)[]): void {
    const known = new Set([...list.options].map((option) => option.value));
    for (const value of values) {
      if (value && !known.has(value)) {
        known.add(value);
        list.append(h("option", { value }));
      }
    }
  }

  function showError(error: unknown): void {
    if (!context.current()) return;
    fill(errors, message("error", error instanceof Error ? error.message : String(error)));
  }

  async function load(): Promise<void> {
    generation += 1;
    const mine = generation;
    const asked = { ...filters };
    fill(errors);
    fill(
      rounding,
      windowOf(asked).rounded
        ? message("info", `Your days start at ${offsetText(offsetMinutes(new Date()))}, not on a UTC hour: where the range is older than the 8 days minute totals are kept, its ends are read from the UTC hour before.`)
        : null,
    );
    fill(more);
    try {
      // The model choices are the models of the range and key: asked for again only when those change.
      const scope = [asked.start, asked.end, asked.key, asked.user, asked.app].join("|");
      const known = asked.model && modelChoices?.scope === scope ? modelChoices.names : null;
      const [all, filtered] = await Promise.all([
        known ? null : api.get<Usage>("/api/usage", { ...query(asked), model: "" }),
        asked.model ? api.get<Usage>("/api/usage", query(asked)) : null,
      ]);
      if (!context.current() || mine !== generation) return;
      usage = (filtered ?? all) as Usage;
      modelChoices = { scope, names: known ?? (all as Usage).models.map((row) => row.model) };
      const modelNames = [...modelChoices.names];
      if (asked.model && !modelNames.includes(asked.model)) modelNames.push(asked.model);
      fill(modelSelect, options([["", "All models"], ...modelNames.map((name): [string, string] => [name, name])], asked.model));
      const totals = usage.totals;
      fill(
        stats,
        statGrid(
          statCard("Total cost", costSpan(totals.cost)),
          statCard("Requests", count(totals.requests), errorsNote(totals.errors)),
          statCard("Input tokens", count(totals.input_tokens), totals.cache_read_tokens ? `${count(totals.cache_read_tokens)} read from cache` : null),
          statCard("Output tokens", count(totals.output_tokens), totals.reasoning_tokens ? `${count(totals.reasoning_tokens)} reasoning` : null),
        ),
      );
      fill(
        models,
        table(
          "Usage by model",
          [
            { label: "Model" },
            { label: "Requests", numeric: true },
            { label: "Errors", numeric: true },
            { label: "Input tokens", numeric: true },
            { label: "Output tokens", numeric: true },
            { label: "Cache creation", numeric: true },
            { label: "Cache read", numeric: true },
            { label: "Cost", numeric: true },
          ],
          usage.models.map((row) => [
            h("span", { class: "model" }, row.model),
            count(row.requests),
            count(row.errors),
            count(row.input_tokens),
            count(row.output_tokens),
            h("span", { title: `5-minute: ${count(row.cache_creation_5m_tokens)}, 1-hour: ${count(row.cache_creation_1h_tokens)}` }, count(row.cache_creation_tokens)),
            count(row.cache_read_tokens),
            costSpan(row.cost),
          ]),
          "No usage in this range.",
        ),
      );
      draw();
      await loadRequests(asked, mine, null);
    } catch (error) {
      if (!context.current() || mine !== generation) return;
      showError(error);
      usage = null;
      draw();
      fill(stats);
      fill(models);
      fill(log);
      fill(more);
    }
  }

  // Typing a date fires a change per digit (0002-01-01, 0020-01-01…): wait for a pause, and ask
  // only for complete dates.
  let pending: number | undefined;
  context.onLeave(() => window.clearTimeout(pending));
  function changed(event: Event): void {
    window.clearTimeout(pending);
    const owner = owners.find((control) => control === event.target);
    if (owner?.value) {
      for (const other of owners) if (other !== owner) other.value = "";
    }
    const typing = event.target === startInput || event.target === endInput;
    pending = window.setTimeout(apply, typing ? DATE_PAUSE_MS : 0);
  }
  function apply(): void {
    if (!startInput.value || !endInput.value) {
      fill(errors, message("error", "Choose both a start and an end date."));
      return;
    }
    const unread = [startInput, endInput].filter((input) => calendarDate(input.value.trim()) === null);
    if (unread.length) {
      fill(errors, message("error", `${unread.map((input) => `“${input.value}”`).join(" and ")} is not a date written YYYY-MM-DD, e.g. ${isoDate(new Date())}.`));
      return;
    }
    startInput.value = startInput.value.trim();
    endInput.value = endInput.value.trim();
    fill(notice);
    filters.start = startInput.value;
    filters.end = endInput.value;
    filters.model = modelSelect.value;
    filters.key = keySelect.value;
    filters.user = user.input.value.trim();
    filters.app = app.input.value.trim();
    history.replaceState(null, "", addressOf(filters));
    void load();
  }
  form.addEventListener("change", changed);
  statusSelect.addEventListener("change", () => {
    filters.status = statusSelect.value;
    history.replaceState(null, "", addressOf(filters));
    void load();
  });
  form.addEventListener("submit", (event) => event.preventDefault());

  keys = (await api.get<{ data: Key[] }>("/api/keys")).data;
  if (!context.current()) return;
  const keyChoices = keys.filter((key) => key.kind === "api" || key.id === filters.key).map((key): [string, string] => [key.id, `${key.name} (${key.prefix}…)`]);
  fill(keySelect, options([["", "All keys"], ...keyChoices], filters.key));
  await load();
};
