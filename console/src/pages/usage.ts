// Usage: what was spent in a date range, on which model, with which key — and the requests behind it.
import { barChart } from "../charts";
import { REQUEST_COLUMNS, loading, requestRow, segmented, statCard, statGrid, table, tableRows } from "../components";
import type { PageContext } from "../context";
import { fill, field, h, message, options } from "../dom";
import { exportButton } from "../exports";
import { addDays, bucketLabel, costSpan, count, isoDate, shortCount, timestamp, usd } from "../format";
import type { Counters, Key, RequestRow, Usage } from "../types";

const DEFAULT_DAYS = 30;
const PAGE_SIZE = 50;

interface Filters {
  start: string;
  end: string;
  model: string;
  key: string;
}

type Metric = "cost" | "requests" | "total_tokens";
const METRICS: [Metric, string][] = [
  ["cost", "Spend"],
  ["requests", "Requests"],
  ["total_tokens", "Tokens"],
];

function filtersFrom(params: URLSearchParams): Filters {
  const today = new Date();
  return {
    start: params.get("start") ?? isoDate(addDays(today, -(DEFAULT_DAYS - 1))),
    end: params.get("end") ?? isoDate(today),
    model: params.get("model") ?? "",
    key: params.get("key") ?? "",
  };
}

function query(filters: Filters): Record<string, string> {
  return { start: filters.start, end: filters.end, model: filters.model, key: filters.key };
}

function metricValue(counters: Counters, metric: Metric): number {
  return metric === "cost" ? Number(counters.cost) : counters[metric];
}

export const usagePage = async (context: PageContext): Promise<void> => {
  const { api, main } = context;
  const filters = filtersFrom(context.params);
  let metric: Metric = "cost";

  const startInput = h("input", { type: "date", name: "start", value: filters.start, required: true });
  const endInput = h("input", { type: "date", name: "end", value: filters.end, required: true });
  const modelSelect = h("select", { name: "model" });
  const keySelect = h("select", { name: "key" });
  const form = h(
    "form",
    { class: "filters", "aria-label": "Filters" },
    field("From", startInput),
    field("To", endInput),
    field("Model", modelSelect),
    field("API key", keySelect),
  );
  const errors = h("div", { class: "page-errors" });
  const stats = h("div", null, loading());
  const chartArea = h("div", { class: "chart-area" });
  const models = h("div");
  const log = h("div");
  const more = h("div", { class: "more" });
  const exporter = exportButton(
    api,
    "Export CSV",
    () => ({ kind: "requests", format: "csv", start: filters.start, end: filters.end, model: filters.model || null, key: filters.key || null }),
    context.onLeave,
  );
  let destroyChart = (): void => {};
  context.onLeave(() => destroyChart());

  fill(
    main,
    h("div", { class: "page-head" }, h("h1", null, "Usage"), h("p", { class: "muted" }, "Dates are whole days in UTC; both ends are included.")),
    form,
    errors,
    stats,
    h(
      "section",
      { class: "card", "aria-labelledby": "usage-chart-title" },
      h("div", { class: "card-head" }, h("h2", { id: "usage-chart-title" }, "Over time"), segmented("Chart shows", "usage-metric", METRICS, metric, (value) => {
        metric = value as Metric;
        void draw();
      })),
      chartArea,
    ),
    h("section", { class: "card", "aria-labelledby": "by-model-title" }, h("h2", { id: "by-model-title" }, "By model"), models),
    h(
      "section",
      { class: "card", "aria-labelledby": "requests-title" },
      h("div", { class: "card-head" }, h("h2", { id: "requests-title" }, "Requests"), exporter.button),
      h("p", { class: "muted note" }, "The export has every request in the range as one CSV row. On a large account, narrow the range or filter by model or key to get it sooner."),
      exporter.status,
      log,
      more,
    ),
  );

  let usage: Usage | null = null;
  let keys: Key[] = [];

  const draw = async (): Promise<void> => {
    destroyChart();
    if (!usage) return;
    const buckets = usage.series.buckets;
    const format = metric === "cost" ? usd : shortCount;
    const label = METRICS.find(([value]) => value === metric)?.[1] ?? "";
    const total = metric === "cost" ? usd(usage.totals.cost) : count(metricValue(usage.totals, metric));
    const { element, chart } = barChart(
      buckets.map((bucket) => bucketLabel(bucket.start, usage!.series.granularity)),
      [{ label, values: buckets.map((bucket) => metricValue(bucket, metric)) }],
      `${label} per ${usage.series.granularity} from ${filters.start} to ${filters.end}: ${total} in all.`,
      format,
    );
    destroyChart = () => chart.destroy();
    fill(chartArea, element);
  };

  async function loadRequests(cursor: string | null): Promise<void> {
    const page = await api.get<{ data: RequestRow[]; next_cursor: string | null }>("/api/usage/requests", { ...query(filters), cursor, limit: PAGE_SIZE });
    if (!context.current()) return;
    const rows = page.data.map((row) => requestRow(row, timestamp));
    if (cursor === null) fill(log, table("Requests, newest first", REQUEST_COLUMNS, rows, "No requests in this range."));
    else log.querySelector("tbody")?.append(...tableRows(REQUEST_COLUMNS, rows));
    fill(
      more,
      page.next_cursor
        ? h("button", { type: "button", class: "secondary", onclick: () => void loadRequests(page.next_cursor).catch(showError) }, "Load more")
        : null,
    );
  }

  function showError(error: unknown): void {
    if (!context.current()) return;
    fill(errors, message("error", error instanceof Error ? error.message : String(error)));
  }

  async function load(): Promise<void> {
    fill(errors);
    try {
      const [all, filtered] = await Promise.all([
        api.get<Usage>("/api/usage", { ...query(filters), model: "" }),
        filters.model ? api.get<Usage>("/api/usage", query(filters)) : null,
      ]);
      if (!context.current()) return;
      usage = filtered ?? all;
      const modelNames = all.models.map((row) => row.model);
      if (filters.model && !modelNames.includes(filters.model)) modelNames.push(filters.model);
      fill(modelSelect, options([["", "All models"], ...modelNames.map((name): [string, string] => [name, name])], filters.model));
      const totals = usage.totals;
      fill(
        stats,
        statGrid(
          statCard("Total cost", costSpan(totals.cost)),
          statCard("Requests", count(totals.requests)),
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
            { label: "Input tokens", numeric: true },
            { label: "Output tokens", numeric: true },
            { label: "Cache creation", numeric: true },
            { label: "Cache read", numeric: true },
            { label: "Cost", numeric: true },
          ],
          usage.models.map((row) => [
            h("span", { class: "model" }, row.model),
            count(row.requests),
            count(row.input_tokens),
            count(row.output_tokens),
            h("span", { title: `5-minute: ${count(row.cache_creation_5m_tokens)}, 1-hour: ${count(row.cache_creation_1h_tokens)}` }, count(row.cache_creation_tokens)),
            count(row.cache_read_tokens),
            costSpan(row.cost),
          ]),
          "No usage in this range.",
        ),
      );
      await draw();
      await loadRequests(null);
    } catch (error) {
      showError(error);
      fill(stats);
      fill(models);
      fill(log);
      fill(more);
      destroyChart();
      fill(chartArea);
    }
  }

  function changed(): void {
    filters.start = startInput.value;
    filters.end = endInput.value;
    filters.model = modelSelect.value;
    filters.key = keySelect.value;
    const params = new URLSearchParams(Object.entries(query(filters)).filter(([, value]) => value));
    history.replaceState(null, "", `/usage?${params}`);
    void load();
  }
  form.addEventListener("change", changed);
  form.addEventListener("submit", (event) => event.preventDefault());

  keys = (await api.get<{ data: Key[] }>("/api/keys")).data;
  if (!context.current()) return;
  const keyChoices = keys.filter((key) => key.kind === "api" || key.id === filters.key).map((key): [string, string] => [key.id, `${key.name} (${key.prefix}…)`]);
  fill(keySelect, options([["", "All keys"], ...keyChoices], filters.key));
  await load();
};
