// Activity: spend, tokens and requests over an hour to a year, grouped by model, key, member or provider.
import type { Chart } from "chart.js";
import { barChart, type Series } from "../charts";
import { segmented, statCard, statGrid, table } from "../components";
import type { PageContext } from "../context";
import { fill, h, message } from "../dom";
import { exportButton } from "../exports";
import { COUNT, MONEY, bucketLabel, costSpan, count, errorsNote, usd, type ChartFormat } from "../format";
import type { Activity, Counters, GroupBy, Period } from "../types";

const PERIODS: [Period, string][] = [
  ["1h", "1 hour"],
  ["1d", "1 day"],
  ["1mo", "1 month"],
  ["1y", "1 year"],
];
const GROUPS: [GroupBy, string][] = [
  ["model", "Model"],
  ["key", "API key"],
  ["member", "Member"],
  ["provider", "Provider"],
];
// The export's buckets: an hour's minutes are not kept long enough for a report, so it gets hours.
const EXPORT_GRANULARITY: Record<Period, string> = { "1h": "hour", "1d": "hour", "1mo": "day", "1y": "month" };
const MOST_GROUPS = 8;

type Metric = "cost" | "total_tokens" | "requests";

function pick<T extends string>(value: string | null, choices: [T, string][], fallback: T): T {
  return choices.some(([choice]) => choice === value) ? (value as T) : fallback;
}

function value(counters: Counters | undefined, metric: Metric): number {
  if (!counters) return 0;
  return metric === "cost" ? Number(counters.cost) : counters[metric];
}

/** One series per group, the biggest spenders first; the rest are summed into "Other". */
function series(activity: Activity, metric: Metric): Series[] {
  const shown = activity.groups.slice(0, MOST_GROUPS);
  const result = shown.map((group) => ({
    label: group.name ?? group.group,
    values: activity.buckets.map((bucket) => value(bucket.groups[group.group], metric)),
  }));
  if (activity.groups.length > MOST_GROUPS) {
    const hidden = activity.groups.slice(MOST_GROUPS).map((group) => group.group);
    result.push({
      label: "Other",
      values: activity.buckets.map((bucket) => hidden.reduce((sum, id) => sum + value(bucket.groups[id], metric), 0)),
    });
  }
  return result.length ? result : [{ label: "Usage", values: activity.buckets.map(() => 0) }];
}

export const activityPage = async (context: PageContext): Promise<void> => {
  const { api, main } = context;
  let period = pick(context.params.get("period"), PERIODS, "1mo");
  let groupBy = pick(context.params.get("group_by"), GROUPS, "model");
  let activity: Activity | null = null;
  let charts: Chart[] = [];
  const destroy = (): void => {
    for (const chart of charts) chart.destroy();
    charts = [];
  };
  context.onLeave(destroy);

  const exportRequest = (format: "csv" | "pdf") => () => ({
    kind: "activity" as const,
    format,
    start: activity?.start,
    end: activity?.end,
    group_by: groupBy,
    granularity: EXPORT_GRANULARITY[period],
  });
  const csv = exportButton(api, "Export CSV", exportRequest("csv"), context.onLeave);
  const pdf = exportButton(api, "Export PDF", exportRequest("pdf"), context.onLeave);
  const body = h("div", null, h("p", { class: "muted loading", role: "status" }, "Loading…"));

  fill(
    main,
    h(
      "div",
      { class: "page-head" },
      h("h1", null, "Activity"),
      h("div", { class: "actions" }, csv.button, pdf.button),
    ),
    h(
      "div",
      { class: "filters" },
      segmented("Period", "period", PERIODS, period, (chosen) => {
        period = chosen as Period;
        void load();
      }),
      segmented("Group by", "group-by", GROUPS, groupBy, (chosen) => {
        groupBy = chosen as GroupBy;
        void load();
      }),
    ),
    csv.status,
    pdf.status,
    body,
  );

  function chartCard(id: string, title: string, metric: Metric, format: ChartFormat, total: string): HTMLElement {
    const data = activity as Activity;
    const { element, chart } = barChart(
      data.buckets.map((bucket) => bucketLabel(bucket.start, data.granularity)),
      series(data, metric),
      `${title} per ${data.granularity}, by ${groupBy}: ${total} in all.`,
      format,
    );
    charts.push(chart);
    return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), element);
  }

  async function load(): Promise<void> {
    history.replaceState(null, "", `/activity?period=${period}&group_by=${groupBy}`);
    // The exports take their window from the loaded period: none until it is there.
    csv.button.disabled = pdf.button.disabled = true;
    let fresh: Activity;
    try {
      fresh = await api.get<Activity>("/api/activity", { period, group_by: groupBy });
    } catch (error) {
      if (!context.current()) return;
      activity = null;
      destroy();
      fill(body, message("error", (error as Error).message));
      return;
    }
    if (!context.current() || fresh.period !== period || fresh.group_by !== groupBy) return;
    activity = fresh;
    csv.button.disabled = pdf.button.disabled = false;
    destroy();
    const totals = fresh.buckets.reduce(
      (sum, bucket) => ({
        cost: sum.cost + Number(bucket.cost),
        tokens: sum.tokens + bucket.total_tokens,
        requests: sum.requests + bucket.requests,
        errors: sum.errors + bucket.errors,
      }),
      { cost: 0, tokens: 0, requests: 0, errors: 0 },
    );
    const groupLabel = GROUPS.find(([choice]) => choice === groupBy)?.[1] ?? "Group";
    fill(
      body,
      statGrid(
        statCard("Spend", usd(totals.cost)),
        statCard("Tokens", count(totals.tokens)),
        statCard("Requests", count(totals.requests), errorsNote(totals.errors)),
        statCard(`${groupLabel}s`, count(fresh.groups.length)),
      ),
      chartCard("spend-chart", "Spend", "cost", MONEY, usd(totals.cost)),
      h(
        "div",
        { class: "columns" },
        chartCard("tokens-chart", "Tokens", "total_tokens", COUNT, count(totals.tokens)),
        chartCard("requests-chart", "Requests", "requests", COUNT, count(totals.requests)),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "groups-title" },
        h("h2", { id: "groups-title" }, `By ${groupBy === "key" ? "API key" : groupBy}`),
        table(
          `Totals by ${groupBy}`,
          [
            { label: groupLabel },
            { label: "Requests", numeric: true },
            { label: "Errors", numeric: true },
            { label: "Input tokens", numeric: true },
            { label: "Output tokens", numeric: true },
            { label: "Cost", numeric: true },
            { label: "Share of spend", numeric: true },
          ],
          fresh.groups.map((group) => [
            h("span", { class: groupBy === "model" ? "model" : null, title: group.group }, group.name ?? group.group),
            count(group.requests),
            count(group.errors),
            count(group.input_tokens),
            count(group.output_tokens),
            costSpan(group.cost),
            totals.cost > 0 ? `${((Number(group.cost) / totals.cost) * 100).toFixed(1)}%` : "—",
          ]),
          "No usage in this period.",
        ),
      ),
    );
  }

  await load();
};
