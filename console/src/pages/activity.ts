// Activity: spend, tokens and requests over an hour to a year, grouped by model, key, member,
// provider, or the end user and the app the requests named.
import type { Chart } from "chart.js";
import { barChart, metricOf, stackedSeries, type ChartMetric, type Series } from "../charts";
import { segmented, statCard, statGrid, table } from "../components";
import type { PageContext } from "../context";
import { fill, h, message } from "../dom";
import { exportButton } from "../exports";
import { COUNT, MONEY, bucketLabel, costSpan, count, errorsNote, isoDate, usd, utcBars, type ChartFormat } from "../format";
import type { Activity, Counters, GroupBy, GroupCounters, Period } from "../types";

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
  ["user", "User"],
  ["app", "App"],
];
// The groupings the usage page filters by, and its filter's name.
const USAGE_FILTER: Partial<Record<GroupBy, string>> = { model: "model", key: "key", user: "user", app: "app" };

/** A group's name; where the usage page filters by the grouping, a link to its usage over the
 * period (its models, its requests). */
function groupName(activity: Activity, group: Activity["groups"][number]): HTMLElement {
  const text = group.name ?? group.group;
  const filter = USAGE_FILTER[activity.group_by];
  const attributes = { class: activity.group_by === "model" ? "model" : null, title: group.group };
  if (!filter) return h("span", attributes, text);
  const last = new Date(new Date(activity.end).getTime() - 1);
  const params = new URLSearchParams({ start: isoDate(new Date(activity.start)), end: isoDate(last), [filter]: group.group });
  return h("a", { ...attributes, href: `/usage?${params}`, title: `Usage of ${group.group}` }, text);
}
// By user or app with more than 15, the API lists those that spent most in the buckets of the
// next coarser granularity the period lies in (reports.RANKING).
const RANKING: Record<string, string> = { minute: "hour", hour: "day", day: "month", month: "year" };
// The export's buckets: an hour's minutes are not kept long enough for a report, so it gets hours.
const EXPORT_GRANULARITY: Record<Period, string> = { "1h": "hour", "1d": "hour", "1mo": "day", "1y": "month" };

type Metric = ChartMetric;
// The metrics a card expands into, as the exports name them.
type Drill = "cost" | "tokens" | "requests";
const DRILLS: [Drill, string][] = [
  ["cost", "Spend"],
  ["tokens", "Tokens"],
  ["requests", "Requests"],
];
const DRILL_METRIC: Record<Drill, Metric> = { cost: "cost", tokens: "total_tokens", requests: "requests" };

function pick<T extends string>(value: string | null, choices: [T, string][], fallback: T): T {
  return choices.some(([choice]) => choice === value) ? (value as T) : fallback;
}

/** One series per group, the biggest spenders first; the rest are summed into "Other", with the
 * groups the API did not list one by one (`other`). */
function series(activity: Activity, metric: Metric): Series[] {
  const names = activity.groups.map((group): [string, string] => [group.group, group.name ?? group.group]);
  const result = stackedSeries(activity.buckets, names, (bucket, id) => metricOf(bucket.groups[id], metric));
  if (activity.other) {
    const rest = activity.buckets.map((bucket) => metricOf(bucket.other ?? undefined, metric));
    const other = result.find((one) => one.label === "Other");
    if (other) other.values = other.values.map((value, index) => value + rest[index]);
    else result.push({ label: "Other", values: rest });
  }
  return result.length ? result : [{ label: "Usage", values: activity.buckets.map(() => 0) }];
}

/** The table row of the groups not listed one by one (by user or app, past the top 15). */
function otherName(activity: Activity): HTMLElement {
  const plural = activity.group_by === "user" ? "users" : "apps";
  return h("span", { class: "muted other-groups" }, `Other ${plural}`);
}

export const activityPage = async (context: PageContext): Promise<void> => {
  const { api, main } = context;
  let period = pick(context.params.get("period"), PERIODS, "1mo");
  let groupBy = pick(context.params.get("group_by"), GROUPS, "model");
  let drill: Drill | null = context.params.get("metric") ? pick(context.params.get("metric"), DRILLS, "cost") : null;
  let activity: Activity | null = null;
  let charts: Chart[] = [];
  const destroy = (): void => {
    for (const chart of charts) chart.destroy();
    charts = [];
  };
  context.onLeave(destroy);

  const exportRequest = (format: "csv" | "pdf", metric?: () => Drill | null) => () => ({
    kind: "activity" as const,
    format,
    start: activity?.start,
    end: activity?.end,
    group_by: groupBy,
    granularity: EXPORT_GRANULARITY[period],
    ...(metric ? { metric: metric() } : {}),
  });
  const csv = exportButton(api, "Export CSV", exportRequest("csv"), context.onLeave);
  const pdf = exportButton(api, "Export PDF", exportRequest("pdf"), context.onLeave);
  // The expanded card's own exports: that metric by the grouping ("Tokens by API key").
  const drillCsv = exportButton(api, "Export CSV", exportRequest("csv", () => drill), context.onLeave);
  const drillPdf = exportButton(api, "Export PDF", exportRequest("pdf", () => drill), context.onLeave);
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

  function address(): void {
    history.replaceState(null, "", `/activity?period=${period}&group_by=${groupBy}${drill ? `&metric=${drill}` : ""}`);
  }

  async function load(): Promise<void> {
    address();
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
    draw(fresh);
  }

  /** A metric's card: a button that expands the metric by the grouping below the cards. */
  function drillCard(metric: Drill, label: string, shown: string, detail?: string): HTMLElement {
    const open = drill === metric;
    return h(
      "button",
      {
        type: "button",
        class: `stat stat-button${open ? " open" : ""}`,
        "aria-expanded": String(open),
        "aria-controls": "metric-detail",
        onclick: () => {
          drill = open ? null : metric;
          address();
          if (activity) draw(activity);
          document.querySelector<HTMLElement>(`.stat-button[data-metric="${metric}"]`)?.focus();
        },
        "data-metric": metric,
      },
      h("span", { class: "stat-label" }, label, h("span", { class: "chevron", "aria-hidden": "true" }, open ? " ▴" : " ▾")),
      h("span", { class: "stat-value" }, shown),
      detail ? h("span", { class: "stat-detail" }, detail) : null,
    );
  }

  /** The expanded metric by the grouping: its chart, every group's share of it, its exports. */
  function drillDown(fresh: Activity, metric: Drill, total: number): HTMLElement {
    const label = DRILLS.find(([choice]) => choice === metric)?.[1] ?? "";
    const groupLabel = GROUPS.find(([choice]) => choice === groupBy)?.[1] ?? "Group";
    const amount = (group: Counters): number => metricOf(group, DRILL_METRIC[metric]);
    const ordered: Counters[] = [...fresh.groups].sort((a, b) => amount(b) - amount(a));
    if (fresh.other) ordered.push(fresh.other);
    const share = (group: Counters): string => (total > 0 ? `${((amount(group) / total) * 100).toFixed(1)}%` : "—");
    const name = (group: Counters): HTMLElement => (group === fresh.other ? otherName(fresh) : groupName(fresh, group as GroupCounters));
    const columns =
      metric === "cost"
        ? [{ label: groupLabel }, { label: "Spend", numeric: true }, { label: "Share", numeric: true }]
        : metric === "tokens"
          ? [
              { label: groupLabel },
              { label: "Input", numeric: true },
              { label: "Output", numeric: true },
              { label: "Cache writes", numeric: true },
              { label: "Cache reads", numeric: true },
              { label: "Total", numeric: true },
              { label: "Share", numeric: true },
            ]
          : [{ label: groupLabel }, { label: "Requests", numeric: true }, { label: "Errors", numeric: true }, { label: "Share", numeric: true }];
    const rows = ordered.map((group) =>
      metric === "cost"
        ? [name(group), costSpan(group.cost), share(group)]
        : metric === "tokens"
          ? [
              name(group),
              count(group.input_tokens),
              // Reasoning tokens are the part of output spent thinking.
              h("span", null, count(group.output_tokens), group.reasoning_tokens ? h("span", { class: "muted small reasoning" }, ` (${count(group.reasoning_tokens)} reasoning)`) : null),
              count(group.cache_creation_tokens),
              count(group.cache_read_tokens),
              count(group.total_tokens),
              share(group),
            ]
          : [name(group), count(group.requests), count(group.errors), share(group)],
    );
    const format = metric === "cost" ? MONEY : COUNT;
    const totalText = metric === "cost" ? usd(total) : count(total);
    const { element, chart } = barChart(
      fresh.buckets.map((bucket) => bucketLabel(bucket.start, fresh.granularity)),
      series(fresh, DRILL_METRIC[metric]),
      `${label} per ${fresh.granularity}, by ${groupBy}: ${totalText} in all.`,
      format,
    );
    charts.push(chart);
    const title = `${label} by ${groupLabel === "API key" ? "API key" : groupLabel.toLowerCase()}`;
    return h(
      "section",
      { class: "card drill", id: "metric-detail", "aria-labelledby": "metric-detail-title" },
      h("div", { class: "card-head" }, h("h2", { id: "metric-detail-title" }, title), h("div", { class: "card-tools" }, drillCsv.button, drillPdf.button)),
      drillCsv.status,
      drillPdf.status,
      element,
      table(title, columns, rows, "No usage in this period."),
    );
  }

  function draw(fresh: Activity): void {
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
        drillCard("cost", "Spend", usd(totals.cost)),
        drillCard("tokens", "Tokens", count(totals.tokens)),
        drillCard("requests", "Requests", count(totals.requests), errorsNote(totals.errors)),
        fresh.other
          ? statCard(`${groupLabel}s`, `${count(fresh.groups.length)}+`, `the top spenders of the ${RANKING[fresh.granularity] ?? "period"}s the period lies in; the rest as Other`)
          : statCard(`${groupLabel}s`, count(fresh.groups.length)),
      ),
      drill ? drillDown(fresh, drill, drill === "cost" ? totals.cost : drill === "tokens" ? totals.tokens : totals.requests) : null,
      utcBars(fresh.granularity) ? h("p", { class: "muted note utc-bars" }, `The period's ${fresh.granularity}s are UTC ${fresh.granularity}s (the rollups' own), labelled by their UTC date.`) : null,
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
          [...fresh.groups, ...(fresh.other ? [fresh.other] : [])].map((group) => [
            group === fresh.other ? otherName(fresh) : groupName(fresh, group as GroupCounters),
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
